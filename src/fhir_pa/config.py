"""How to reach one payer: its FHIR base, our client registration there, and our sender identifiers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fhir_pa.fhir.retry import RetryPolicy


@dataclass(frozen=True)
class Sender:
    """Who we are to the payer: the X12-era identifiers PAS carries in TransmissionIdentifiers.

    ``trn_originator`` is the originating-company id of the patient-event trace number (TRN03); the Claim
    identifier system is ``urn:trnorg:<trn_originator>`` as the IG recommends.
    """

    application_sender_code: str = "FHIRPA"
    application_receiver_code: str = "PAYER"
    interchange_sender_id: str | None = None
    interchange_receiver_id: str | None = None
    trn_originator: str = "fhir-pa"
    submitter_system: str = "urn:fhir-pa:submitter-transaction"


#: What PAS needs: create Claims (``$submit``) and read ClaimResponses. Payers may ask for others.
PAS_SCOPES: tuple[str, ...] = ("system/Claim.c", "system/ClaimResponse.r")


@dataclass(frozen=True)
class PayerConfig:
    """Everything needed to talk PAS to one payer endpoint."""

    fhir_base_url: str
    client_id: str
    key_path: Path
    scopes: Sequence[str] = PAS_SCOPES
    #: Skip SMART discovery when the payer publishes no ``.well-known/smart-configuration``.
    token_endpoint: str | None = None
    sender: Sender = field(default_factory=Sender)
    #: Seconds for one HTTP exchange; the IG's target for ``$submit`` is 15 s end to end.
    timeout: float = 20.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Key id and algorithm, when the key file holds several keys or a bare PEM.
    key_id: str | None = None

    @property
    def base(self) -> str:
        return self.fhir_base_url.rstrip("/")

    @property
    def submit_url(self) -> str:
        return f"{self.base}/Claim/$submit"

"""How to reach one payer: its FHIR base, our client registration there, and our sender identifiers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fhir_pa.fhir.retry import RetryPolicy

if TYPE_CHECKING:
    from fhir_pa.pas.subscription import SubscriptionSettings


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
PAS_SCOPES: tuple[str, ...] = ("system/Claim.c", "system/ClaimResponse.rs")
#: Added when the payer is configured for notifications: create, read and re-request our Subscription.
SUBSCRIPTION_SCOPES: tuple[str, ...] = ("system/Subscription.crud",)


#: How to ask a payer where a pended request stands: read the ClaimResponse by id, search ClaimResponses by the
#: request's identifier, or ``$inquire``. ``auto`` reads when the ``$submit`` answer gave a ClaimResponse id and
#: inquires otherwise.
PollMode = Literal["auto", "read", "search", "inquire"]


@dataclass(frozen=True)
class PollSettings:
    """Polling for a final decision: exponential backoff with jitter, capped, and a per-payer rate limit.

    The IG prefers notifications (and asks clients not to inquire repeatedly, §spec-9/42), so polling starts
    slow and slows down further; it is the channel of last resort, and the fallback when notifications stop.
    """

    mode: PollMode = "auto"
    first_delay: float = 30.0
    max_delay: float = 3600.0
    multiplier: float = 2.0
    #: At most this many poll calls per second to one payer, across every request tracked in this process.
    rate_limit: float = 1.0
    #: With an active Subscription: poll anyway when no notification came for this long.
    fallback_after: float = 900.0
    #: Seconds between looks at the ledger while waiting for a notification written by a receiver.
    ledger_check: float = 1.0
    #: Seconds between checks that our Subscription at the payer is still ``active``.
    subscription_check: float = 600.0


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
    #: Notifications: None when the payer offers no PAS Subscription (then tracking polls).
    subscription: SubscriptionSettings | None = None
    poll: PollSettings = field(default_factory=PollSettings)

    @property
    def requested_scopes(self) -> tuple[str, ...]:
        """The scopes to ask for: ``scopes``, plus Subscription access when notifications are configured."""
        extra = SUBSCRIPTION_SCOPES if self.subscription is not None else ()
        return tuple(dict.fromkeys([*self.scopes, *extra]))

    @property
    def base(self) -> str:
        return self.fhir_base_url.rstrip("/")

    @property
    def submit_url(self) -> str:
        return f"{self.base}/Claim/$submit"

    @property
    def inquire_url(self) -> str:
        return f"{self.base}/Claim/$inquire"

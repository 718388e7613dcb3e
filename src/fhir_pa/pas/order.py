"""What an EHR knows about an order that needs prior authorization, in plain typed fields.

This is the input of :func:`fhir_pa.pas.bundle.build_request_bundle`. It is deliberately not FHIR: EHRs
hold this data in their own shapes, and the builder owns every PAS rule about how it becomes FHIR. The JSON
form of :class:`PriorAuthOrder` is the order-file format of ``fhir-pa submit`` (documented in the README).
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from fhir_pa.errors import InputError

CRD_COVERAGE_INFORMATION = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Npi = Annotated[str, StringConstraints(pattern=r"^\d{10}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Address(_Model):
    lines: list[NonEmpty] = Field(default_factory=list)
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str = "US"


class Person(_Model):
    """A patient or subscriber as the EHR registered them."""

    given: list[NonEmpty] = Field(min_length=1)
    family: NonEmpty
    birth_date: date
    gender: Literal["male", "female", "other", "unknown"]
    #: The EHR's medical record number; sent as a US Core Patient identifier.
    mrn: str | None = None
    mrn_system: str = "urn:fhir-pa:mrn"
    address: Address | None = None
    phone: str | None = None


class Coverage(_Model):
    member_id: NonEmpty
    member_id_system: str = "urn:fhir-pa:member-id"
    subscriber_id: str | None = None
    #: Relationship of the patient to the subscriber (FHIR subscriber-relationship codes).
    relationship: Literal["self", "spouse", "child", "other"] = "self"
    #: Required when ``relationship`` is not ``self`` (PAS invariant self-beneficiary).
    subscriber: Person | None = None
    group: str | None = None
    plan: str | None = None

    @model_validator(mode="after")
    def _subscriber_when_not_self(self) -> Coverage:
        if self.relationship != "self" and self.subscriber is None:
            raise ValueError("a subscriber is required when relationship is not 'self'")
        return self


class Organization(_Model):
    name: NonEmpty
    npi: Npi | None = None
    tin: str | None = None
    #: The payer's own id for itself (C4BB payerid), used for insurers.
    payer_id: str | None = None
    address: Address | None = None
    phone: str | None = None


class Practitioner(_Model):
    given: list[NonEmpty] = Field(min_length=1)
    family: NonEmpty
    npi: Npi
    phone: str | None = None


class Requester(_Model):
    """Who asks for the authorization: a clinician acting for an organization."""

    practitioner: Practitioner
    organization: Organization


class ServiceLine(_Model):
    """One thing to authorize: a CPT or HCPCS coded service with its dates and quantity."""

    code: NonEmpty
    code_system: Literal["cpt", "hcpcs"] = "cpt"
    display: str | None = None
    quantity: Decimal | None = Field(default=None, gt=0)
    #: Free-text unit (PAS Quantity prefers a unit over a code outside X12 673).
    unit: str | None = None
    service_date: date | None = None
    service_end: date | None = None
    #: X12 1365 service type (``1`` medical care, ``3`` consultation, ...).
    category: str = "1"
    #: CMS place-of-service code.
    place_of_service: str = "11"
    #: X12 1525 request type (``HS`` health services review, ``SC`` specialty care, ``AR`` admission review).
    request_type: Literal["AR", "HS", "SC", "IN"] = "HS"
    #: X12 1322 certification type: ``I`` initial, ``1``/``2`` appeals, ``4`` extension, ``R`` renewal, ``S`` revised.
    certification_type: Literal["I", "1", "2", "4", "R", "S"] = "I"
    modifiers: list[NonEmpty] = Field(default_factory=list)
    #: Indexes (0-based) into :attr:`PriorAuthOrder.diagnoses`; empty means all of them.
    diagnoses: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)
    #: The Claim item sequence. Default: the line's position (1, 2, ...). Give it explicitly when editing an order
    #: that was sent already, so a removed line does not shift the others (sequences are the trace key).
    sequence: int | None = Field(default=None, ge=1)
    #: The payer's CRD ``ext-coverage-information`` for this order, as CRD returned it; echoed on the order in the
    #: PAS Bundle (CRD resp-46), with its coverage reference pointed at the Bundle's Coverage.
    coverage_information: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _end_after_start(self) -> ServiceLine:
        for n, extension in enumerate(self.coverage_information):
            if extension.get("url") != CRD_COVERAGE_INFORMATION or not isinstance(extension.get("extension"), list):
                raise ValueError(f"coverage_information[{n}] is not a CRD ext-coverage-information extension")
        if self.service_end is not None:
            if self.service_date is None:
                raise ValueError("service_end needs service_date")
            if self.service_end < self.service_date:
                raise ValueError("service_end is before service_date")
        return self


class Diagnosis(_Model):
    code: NonEmpty
    system: Literal["icd-10-cm"] = "icd-10-cm"
    display: str | None = None


class Attachment(_Model):
    """A document sent with the request (inline, base64): a PAS DocumentReference."""

    content_type: NonEmpty
    data: NonEmpty = Field(description="base64-encoded content")
    title: str | None = None
    #: LOINC document type.
    loinc: str = "11506-3"
    #: X12 755 report type (PWK01), e.g. ``09`` progress report, ``OZ`` support data for claim.
    report_type: str = "OZ"
    description: str | None = None


class Documentation(_Model):
    """Completed DTR documentation (a DTR QuestionnaireResponse Bundle) sent as additional information."""

    #: The DTR QR Bundle: a ``collection`` with the QuestionnaireResponse first (dtrb-2).
    bundle: dict[str, Any]
    #: X12 755 report type (PWK01) for ``documentInformation.reportTypeCode``.
    report_type: str = "OZ"
    description: str | None = None

    @model_validator(mode="after")
    def _qr_bundle(self) -> Documentation:
        entries = self.bundle.get("entry")
        first = entries[0].get("resource") if isinstance(entries, list) and entries and isinstance(
            entries[0], dict) else None
        if self.bundle.get("resourceType") != "Bundle" or not isinstance(first, dict) \
                or first.get("resourceType") != "QuestionnaireResponse":
            raise ValueError("documentation must be a DTR QR Bundle with the QuestionnaireResponse first")
        return self


class PriorAuthOrder(_Model):
    """One order to authorize, with everything a PAS request needs."""

    #: The EHR's own id for this order; the ledger's idempotency key.
    order_id: NonEmpty
    patient: Person
    coverage: Coverage
    insurer: Organization
    requester: Requester
    services: list[ServiceLine] = Field(min_length=1)
    diagnoses: list[Diagnosis] = Field(default_factory=list, max_length=12)
    #: ``expedited`` runs on the 72-hour CMS clock, ``standard`` on 7 calendar days.
    urgency: Literal["standard", "expedited"] = "standard"
    claim_type: Literal["professional", "institutional"] = "professional"
    attachments: list[Attachment] = Field(default_factory=list)
    #: Completed DTR documentation, each sent as a nested Bundle (PAS supportingInfo AdditionalInformation).
    documentation: list[Documentation] = Field(default_factory=list)
    note: str | None = None

    @model_validator(mode="after")
    def _diagnosis_indexes_exist(self) -> PriorAuthOrder:
        for line_no, line in enumerate(self.services):
            for index in line.diagnoses:
                if index >= len(self.diagnoses):
                    raise ValueError(f"services[{line_no}].diagnoses refers to diagnosis {index}, "
                                     f"but only {len(self.diagnoses)} are given")
        return self

    @model_validator(mode="after")
    def _sequences_unique(self) -> PriorAuthOrder:
        seen: set[int] = set()
        for sequence in self.item_sequences():
            if sequence in seen:
                raise ValueError(f"item sequence {sequence} is used by two service lines")
            seen.add(sequence)
        return self

    def item_sequences(self) -> list[int]:
        """The Claim item sequence of each service line: its explicit ``sequence``, else its position."""
        return [line.sequence or position for position, line in enumerate(self.services, start=1)]


def _location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "$"


def order_from_data(data: Any, *, source: str = "order") -> PriorAuthOrder:
    """Validate ``data`` as an order; errors name the field path, never the value (it may be PHI)."""
    try:
        return PriorAuthOrder.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InputError(f"{source}: {first['msg']}{more}", path=_location(first["loc"])) from None


def load_order(path: str | Path) -> PriorAuthOrder:
    """Read one order from a JSON file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read order file {file}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"order file {file} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                         ) from None
    return order_from_data(data, source=f"order file {file.name}")

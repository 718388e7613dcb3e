"""The typed view of a payer's PAS decision, as :func:`fhir_pa.pas.decision.parse_response` returns it.

Frozen dataclasses of plain strings and numbers: a decision can be stored, compared and printed without
the FHIR payload it came from, and nothing in it can be changed by accident after parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DecisionStatus(StrEnum):
    """What the payer decided about the whole request (see the mapping in ``decision_status``)."""

    APPROVED = "approved"
    DENIED = "denied"
    PENDED = "pended"
    PARTIAL = "partial"
    MODIFIED = "modified"
    CANCELLED = "cancelled"
    ERROR = "error"
    UNKNOWN = "unknown"


class ItemStatus(StrEnum):
    """What the payer decided about one item: the X12 306 (HCR01) review action code, named."""

    APPROVED = "approved"  # A1 certified in total
    PARTIAL = "partial"  # A2 certified, partial
    DENIED = "denied"  # A3 not certified
    PENDED = "pended"  # A4 pended
    MODIFIED = "modified"  # A6 modified: what was authorized is in addItem
    CANCELLED = "cancelled"  # C cancelled
    CONTACT_PAYER = "contact-payer"  # CT contact payer
    NO_ACTION = "no-action"  # NA no action required
    UNKNOWN = "unknown"  # no review action, or a code outside X12 306


@dataclass(frozen=True)
class Coding:
    system: str | None
    code: str | None
    display: str | None


@dataclass(frozen=True)
class Period:
    start: str | None
    end: str | None


@dataclass(frozen=True)
class Quantity:
    value: float | None
    unit: str | None


@dataclass(frozen=True)
class AuthorizedItem:
    """A service the payer authorized, from ``ClaimResponse.addItem``.

    With an ``itemSequence`` that matches a requested item it is what the payer authorized instead of that
    item (A6 Modified); with none that matches, it is a new authorized service (§spec-36/37).
    """

    item_sequences: tuple[int, ...]
    product_or_service: tuple[Coding, ...]
    quantity: Quantity | None
    review_action: str | None
    status: ItemStatus
    serviced: Period | None  # servicedDate (start = end) or servicedPeriod
    auth_number: str | None
    validity: Period | None
    notes: tuple[str, ...]


@dataclass(frozen=True)
class ItemDecision:
    """The payer's answer for one requested item, matched to the Claim item by ``sequence``."""

    sequence: int | None
    review_action: str | None
    status: ItemStatus
    auth_number: str | None  # reviewAction ``number`` (HCR02), else the item's authorizationNumber
    administration_reference: str | None  # REF-NT, e.g. the pend tracking number
    validity: Period | None  # itemPreAuthPeriod
    issue_date: str | None  # itemPreAuthIssueDate
    reason_codes: tuple[Coding, ...]  # reviewAction reasonCode (X12 886)
    notes: tuple[str, ...]  # processNote texts named by noteNumber
    authorized: tuple[AuthorizedItem, ...]  # addItems carrying this item's sequence


@dataclass(frozen=True)
class ProcessingError:
    """One ``ClaimResponse.error``: an X12 AAA rejection, and where in the request it points."""

    code: str | None  # X12 901 reject reason
    display: str | None
    path: str | None  # extension-errorPath: FHIRPath into the request Bundle
    element: str | None  # extension-errorElement: X12 loop/segment, e.g. 2010A-NM103
    followup: str | None  # extension-errorFollowupAction: X12 889, e.g. C (correct and resubmit)
    note: str | None  # processNote text named by errorElement.processNote
    item_sequence: int | None
    detail_sequence: int | None
    subdetail_sequence: int | None


@dataclass(frozen=True)
class InformationRequest:
    """A payer's request for more information (``ClaimResponse.communicationRequest``)."""

    reference: str | None
    id: str | None  # None when the reference does not resolve inside the Bundle
    codes: tuple[str, ...]  # payload contentString: LOINC attachment codes
    content_modifiers: tuple[str, ...]
    item_sequences: tuple[int, ...]  # extension-serviceLineNumber
    medium: tuple[str, ...]
    category: tuple[str, ...]  # X12 755 (PWK01) report type


@dataclass(frozen=True)
class PasDecision:
    """The payer's decision in one PAS response, read leniently; ``warnings`` say what was tolerated."""

    status: DecisionStatus
    preauth_ref: str | None
    preauth_period: Period | None
    review_action: str | None  # a review action on the ClaimResponse itself (whole request)
    items: tuple[ItemDecision, ...]
    added_items: tuple[AuthorizedItem, ...]
    errors: tuple[ProcessingError, ...]
    information_requests: tuple[InformationRequest, ...]
    outcome: str | None
    disposition: str | None
    claim_response_id: str | None
    claim_response_full_url: str | None
    request_reference: str | None
    request_identifiers: tuple[str, ...]  # "system|value" (or value): ClaimResponse.request and .identifier
    bundle_identifier: str | None  # "system|value" (or value)
    created: str | None
    warnings: tuple[str, ...]

    @property
    def final(self) -> bool:
        """True once the payer has answered for good: not pended, and not unreadable."""
        return self.status not in (DecisionStatus.PENDED, DecisionStatus.UNKNOWN)

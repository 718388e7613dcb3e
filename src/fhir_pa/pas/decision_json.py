"""The JSON view of a decision (``fhir-pa pas explain --json``): fixed key order, JSON types only.

Scripts depend on these keys, so they are written out one by one rather than derived from the dataclasses:
adding a field to a dataclass never changes this output by accident.
"""

from __future__ import annotations

from typing import Any

from fhir_pa.pas.decision_types import (
    AuthorizedItem,
    Coding,
    InformationRequest,
    ItemDecision,
    PasDecision,
    Period,
    ProcessingError,
    Quantity,
)


def _period(period: Period | None) -> dict[str, Any] | None:
    return None if period is None else {"start": period.start, "end": period.end}


def _coding(coding: Coding) -> dict[str, Any]:
    return {"system": coding.system, "code": coding.code, "display": coding.display}


def _quantity(quantity: Quantity | None) -> dict[str, Any] | None:
    return None if quantity is None else {"value": quantity.value, "unit": quantity.unit}


def _authorized(item: AuthorizedItem) -> dict[str, Any]:
    return {
        "item_sequences": list(item.item_sequences),
        "review_action": item.review_action,
        "status": item.status.value,
        "auth_number": item.auth_number,
        "product_or_service": [_coding(c) for c in item.product_or_service],
        "quantity": _quantity(item.quantity),
        "serviced": _period(item.serviced),
        "validity": _period(item.validity),
        "notes": list(item.notes),
    }


def _item(item: ItemDecision) -> dict[str, Any]:
    return {
        "sequence": item.sequence,
        "review_action": item.review_action,
        "status": item.status.value,
        "auth_number": item.auth_number,
        "administration_reference": item.administration_reference,
        "issue_date": item.issue_date,
        "validity": _period(item.validity),
        "reasons": [_coding(c) for c in item.reason_codes],
        "notes": list(item.notes),
        "authorized": [_authorized(a) for a in item.authorized],
    }


def _error(error: ProcessingError) -> dict[str, Any]:
    return {
        "code": error.code,
        "path": error.path,
        "element": error.element,
        "followup": error.followup,
        "display": error.display,
        "note": error.note,
        "item_sequence": error.item_sequence,
        "detail_sequence": error.detail_sequence,
        "subdetail_sequence": error.subdetail_sequence,
    }


def _information_request(request: InformationRequest) -> dict[str, Any]:
    return {
        "reference": request.reference,
        "id": request.id,
        "codes": list(request.codes),
        "content_modifiers": list(request.content_modifiers),
        "item_sequences": list(request.item_sequences),
        "medium": list(request.medium),
        "category": list(request.category),
    }


def decision_as_json(decision: PasDecision) -> dict[str, Any]:
    """The decision as a JSON-ready dict with a stable key order."""
    return {
        "status": decision.status.value,
        "final": decision.final,
        "preauth_ref": decision.preauth_ref,
        "preauth_period": _period(decision.preauth_period),
        "review_action": decision.review_action,
        "outcome": decision.outcome,
        "disposition": decision.disposition,
        "items": [_item(i) for i in decision.items],
        "added_items": [_authorized(a) for a in decision.added_items],
        "errors": [_error(e) for e in decision.errors],
        "information_requests": [_information_request(r) for r in decision.information_requests],
        "claim_response_id": decision.claim_response_id,
        "claim_response_full_url": decision.claim_response_full_url,
        "request_reference": decision.request_reference,
        "request_identifiers": list(decision.request_identifiers),
        "bundle_identifier": decision.bundle_identifier,
        "created": decision.created,
        "warnings": list(decision.warnings),
    }

"""Read any PAS response Bundle into a typed decision, leniently.

Overall status, from the items' X12 306 review-action codes (never from ``outcome``: 2.0.1 servers send
``queued``, and 2.2 pends say ``complete`` + A4):

- ``outcome = error`` or any ``error[]``  → error
- any item A4                           → pended
- every item C                          → cancelled
- every item A1                         → approved
- every item A6, or A6 with A1          → modified (the authorized details are in ``addItem``)
- every item A3                         → denied
- any other mix of A1/A2/A3/A6          → partial
- no items: the ClaimResponse-level review action decides; nothing at all → unknown
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fhir_pa.errors import InvalidResponse
from fhir_pa.pas import codes

Json = Mapping[str, Any]


class DecisionStatus(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"
    PENDED = "pended"
    PARTIAL = "partial"
    MODIFIED = "modified"
    CANCELLED = "cancelled"
    ERROR = "error"
    UNKNOWN = "unknown"


class ItemStatus(StrEnum):
    APPROVED = "approved"
    PARTIAL = "partial"
    DENIED = "denied"
    PENDED = "pended"
    MODIFIED = "modified"
    CANCELLED = "cancelled"
    CONTACT_PAYER = "contact-payer"
    NO_ACTION = "no-action"
    UNKNOWN = "unknown"


ITEM_STATUS = {"A1": ItemStatus.APPROVED, "A2": ItemStatus.PARTIAL, "A3": ItemStatus.DENIED,
               "A4": ItemStatus.PENDED, "A6": ItemStatus.MODIFIED, "C": ItemStatus.CANCELLED,
               "CT": ItemStatus.CONTACT_PAYER, "NA": ItemStatus.NO_ACTION}


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
class AuthorizedItem:
    item_sequences: tuple[int, ...]
    product_or_service: tuple[Coding, ...]
    quantity: float | None
    unit: str | None
    review_action: str | None
    auth_number: str | None


@dataclass(frozen=True)
class ItemDecision:
    sequence: int | None
    review_action: str | None
    status: ItemStatus
    auth_number: str | None
    administration_reference: str | None
    validity: Period | None
    reason_codes: tuple[Coding, ...]
    notes: tuple[str, ...]
    authorized: tuple[AuthorizedItem, ...]


@dataclass(frozen=True)
class ProcessingError:
    code: str | None
    path: str | None
    element: str | None
    followup: str | None
    item_sequence: int | None


@dataclass(frozen=True)
class InformationRequest:
    reference: str | None
    codes: tuple[str, ...]
    item_sequences: tuple[int, ...]


@dataclass(frozen=True)
class PasDecision:
    status: DecisionStatus
    preauth_ref: str | None
    preauth_period: Period | None
    items: tuple[ItemDecision, ...]
    added_items: tuple[AuthorizedItem, ...]
    errors: tuple[ProcessingError, ...]
    information_requests: tuple[InformationRequest, ...]
    outcome: str | None
    disposition: str | None
    claim_response_id: str | None
    claim_response_full_url: str | None
    request_reference: str | None
    bundle_identifier: str | None
    created: str | None
    warnings: tuple[str, ...]

    @property
    def final(self) -> bool:
        return self.status not in (DecisionStatus.PENDED, DecisionStatus.UNKNOWN)


# -- lenient accessors -----------------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _maps(value: Any) -> list[Json]:
    return [v for v in _list(value) if isinstance(v, Mapping)]


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _codings(concept: Any) -> tuple[Coding, ...]:
    if not isinstance(concept, Mapping):
        return ()
    return tuple(Coding(_str(c.get("system")), _str(c.get("code")), _str(c.get("display")))
                 for c in _maps(concept.get("coding")))


def _first_code(concept: Any) -> str | None:
    return next((c.code for c in _codings(concept) if c.code), None)


def _exts(node: Any, *urls: str) -> list[Json]:
    if not isinstance(node, Mapping):
        return []
    return [e for e in _maps(node.get("extension")) if e.get("url") in urls]


def _period(value: Any) -> Period | None:
    if isinstance(value, Mapping):
        return Period(_str(value.get("start")), _str(value.get("end")))
    return None


#: Words in a coding's display that name an action, for payers that send placeholder codes (seen in test kits).
_DISPLAY_ACTIONS = (("not certified", "A3"), ("denied", "A3"), ("pended", "A4"), ("pending", "A4"),
                    ("modified", "A6"), ("cancel", "C"), ("certified in total", "A1"), ("approved", "A1"))


def _action(concept: Any) -> str | None:
    """The X12 306 code of a review action, matched by value whatever the system (RI, IG, test kits)."""
    codings = _codings(concept)
    for coding in codings:
        if coding.code in ITEM_STATUS:
            return coding.code
    for coding in codings:
        display = (coding.display or "").lower()
        for words, code in _DISPLAY_ACTIONS:
            if words in display:
                return code
    return next((c.code for c in codings if c.code), None)


_REVIEW_CODE_URLS = (codes.EXT_REVIEW_ACTION_CODE, "reviewActionCode", "code")


def _review(adjudications: Any) -> tuple[str | None, str | None, tuple[Coding, ...]]:
    """(HCR01 code, HCR02 number, HCR03 reasons) from a list of adjudications, 2.2 or older shapes."""
    for adjudication in _maps(adjudications):
        for review in _exts(adjudication, codes.EXT_REVIEW_ACTION):
            code = next((_action(sub.get("valueCodeableConcept")) for sub in _exts(review, *_REVIEW_CODE_URLS)),
                        None)
            number = next((_str(sub.get("valueString")) for sub in _exts(review, "number")), None)
            reasons = tuple(c for sub in _exts(review, "reasonCode") for c in _codings(sub.get("valueCodeableConcept")))
            if code:
                return code, number, reasons
        for legacy in _exts(adjudication, codes.EXT_REVIEW_ACTION_CODE):  # 2.0.1 / RI: the code directly
            code = _action(legacy.get("valueCodeableConcept"))
            if code:
                return code, None, ()
    return None, None, ()


def _ext_string(node: Any, name: str) -> str | None:
    for ext in _exts(node, codes.extension(name)):
        value = ext.get("valueString") or (ext.get("valueIdentifier") or {}).get("value") \
            if isinstance(ext.get("valueIdentifier"), Mapping) or ext.get("valueString") else None
        if isinstance(value, str):
            return value
    return None


def _authorized(add: Json) -> AuthorizedItem:
    code, number, _ = _review(add.get("adjudication"))
    quantity = add.get("quantity")
    value = quantity.get("value") if isinstance(quantity, Mapping) else None
    return AuthorizedItem(
        item_sequences=tuple(s for s in (_int(v) for v in _list(add.get("itemSequence"))) if s is not None),
        product_or_service=_codings(add.get("productOrService")),
        quantity=float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None,
        unit=_str(quantity.get("unit")) if isinstance(quantity, Mapping) else None,
        review_action=code, auth_number=number)


def _notes(response: Json) -> dict[int, str]:
    return {n: text for note in _maps(response.get("processNote"))
            if (n := _int(note.get("number"))) is not None and (text := _str(note.get("text")))}


# -- parsing ---------------------------------------------------------------------------------------


def _load(data: bytes | str | Mapping[str, Any], source: str) -> Json:
    if isinstance(data, Mapping):
        return data
    try:
        parsed = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidResponse(f"{source} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (UnicodeDecodeError, TypeError):
        raise InvalidResponse(f"{source} is not UTF-8 JSON") from None
    if not isinstance(parsed, Mapping):
        raise InvalidResponse(f"{source} is JSON but not a FHIR resource", path="$")
    return parsed


def _outcome_text(outcome: Json) -> str:
    for issue in _maps(outcome.get("issue")):
        text = _str(issue.get("diagnostics")) or _str((issue.get("details") or {}).get("text")
                                                      if isinstance(issue.get("details"), Mapping) else None)
        if text:
            return text
        if _str(issue.get("code")):
            return str(issue["code"])
    return "no issue text"


def _find_claim_response(bundle: Json, warnings: list[str]) -> tuple[Json, str | None]:
    entries = _maps(bundle.get("entry"))
    for position, entry in enumerate(entries):
        resource = entry.get("resource")
        if isinstance(resource, Mapping) and resource.get("resourceType") == "ClaimResponse":
            if position != 0:
                warnings.append(f"ClaimResponse is entry {position}, not the first entry")
            return resource, _str(entry.get("fullUrl"))
    for entry in entries:  # a notification or wrapper: look one level down
        resource = entry.get("resource")
        if isinstance(resource, Mapping) and resource.get("resourceType") == "Bundle":
            try:
                return _find_claim_response(resource, warnings)
            except InvalidResponse:
                continue
    raise InvalidResponse("the Bundle holds no ClaimResponse", path="Bundle.entry")


def _overall(items: list[ItemDecision], response_action: str | None, has_errors: bool) -> DecisionStatus:
    if has_errors:
        return DecisionStatus.ERROR
    actions = [i.review_action for i in items if i.review_action] or ([response_action] if response_action else [])
    if not actions:
        return DecisionStatus.UNKNOWN
    present = set(actions)
    if "A4" in present:
        return DecisionStatus.PENDED
    if present == {"C"}:
        return DecisionStatus.CANCELLED
    if present == {"A1"}:
        return DecisionStatus.APPROVED
    if present <= {"A1", "A6"}:
        return DecisionStatus.MODIFIED
    if present == {"A3"}:
        return DecisionStatus.DENIED
    if present & {"A1", "A2", "A3", "A6"}:
        return DecisionStatus.PARTIAL
    return DecisionStatus.UNKNOWN


def parse_response(data: bytes | str | Mapping[str, Any], *, source: str = "response") -> PasDecision:
    """The decision in a PAS response Bundle (or a bare ClaimResponse); InvalidResponse if there is none."""
    document = _load(data, source)
    kind = document.get("resourceType")
    warnings: list[str] = []
    if kind == "OperationOutcome":
        raise InvalidResponse(f"{source} is an OperationOutcome, not a PAS response: {_outcome_text(document)}")
    if kind == "Parameters":  # $inquire style: take the first Bundle parameter
        resources = [p.get("resource") for p in _maps(document.get("parameter"))]
        inner = next((r for r in resources if isinstance(r, Mapping) and r.get("resourceType") == "Bundle"), None)
        if inner is None:
            raise InvalidResponse(f"{source} is a Parameters without a response Bundle", path="Parameters.parameter")
        document, kind = inner, "Bundle"
    if kind == "ClaimResponse":
        response, full_url, bundle_id = document, None, None
    elif kind == "Bundle":
        response, full_url = _find_claim_response(document, warnings)
        identifier = document.get("identifier")
        bundle_id = _str(identifier.get("value")) if isinstance(identifier, Mapping) else None
    else:
        raise InvalidResponse(f"{source} is a {kind or 'JSON object without resourceType'}, not a PAS response Bundle",
                              path="resourceType")

    outcome = _str(response.get("outcome"))
    if outcome == "queued":
        warnings.append("outcome 'queued' is a PAS 2.0.1 value; the decision is read from review actions")
    notes = _notes(response)
    add_items = [_authorized(a) for a in _maps(response.get("addItem"))]
    items: list[ItemDecision] = []
    sequences: set[int] = set()
    for item in _maps(response.get("item")):
        sequence = _int(item.get("itemSequence"))
        if sequence is not None:
            sequences.add(sequence)
        code, number, reasons = _review(item.get("adjudication"))
        validity = next((_period(e.get("valuePeriod")) for e in _exts(item, codes.extension("itemPreAuthPeriod"))),
                        None)
        items.append(ItemDecision(
            sequence=sequence, review_action=code, status=ITEM_STATUS.get(code or "", ItemStatus.UNKNOWN),
            auth_number=number or _ext_string(item, "authorizationNumber"),
            administration_reference=_ext_string(item, "administrationReferenceNumber"),
            validity=validity, reason_codes=reasons,
            notes=tuple(notes[n] for n in (_int(v) for v in _list(item.get("noteNumber"))) if n in notes),
            authorized=tuple(a for a in add_items if sequence is not None and sequence in a.item_sequences)))
    errors = []
    for error in _maps(response.get("error")):
        errors.append(ProcessingError(
            code=_first_code(error.get("code")),
            path=next((_str(e.get("valueString")) for e in _exts(error, codes.extension("errorPath"))), None),
            element=next((_str(e.get("valueString")) for e in _exts(error, codes.extension("errorElement"))), None),
            followup=next((_first_code(e.get("valueCodeableConcept"))
                           for e in _exts(error, codes.extension("errorFollowupAction"))), None),
            item_sequence=_int(error.get("itemSequence"))))
    info = [InformationRequest(reference=_str(ref.get("reference")), codes=(), item_sequences=())
            for ref in _maps(response.get("communicationRequest"))]
    response_action, _, _ = _review(response.get("adjudication"))
    request = response.get("request")
    return PasDecision(
        status=_overall(items, response_action, outcome == "error" or bool(errors)),
        preauth_ref=_str(response.get("preAuthRef")), preauth_period=_period(response.get("preAuthPeriod")),
        items=tuple(items), added_items=tuple(a for a in add_items if not (set(a.item_sequences) & sequences)),
        errors=tuple(errors), information_requests=tuple(info), outcome=outcome,
        disposition=_str(response.get("disposition")), claim_response_id=_str(response.get("id")),
        claim_response_full_url=full_url,
        request_reference=_str(request.get("reference")) if isinstance(request, Mapping) else None,
        bundle_identifier=bundle_id, created=_str(response.get("created")), warnings=tuple(warnings))


def _authorized_json(a: AuthorizedItem) -> dict[str, Any]:
    return {"item_sequences": list(a.item_sequences), "codes": [c.code for c in a.product_or_service],
            "quantity": a.quantity, "unit": a.unit, "review_action": a.review_action, "auth_number": a.auth_number}


def decision_as_json(decision: PasDecision) -> dict[str, Any]:
    """The ``fhir-pa pas explain --json`` view: stable keys, JSON types only."""
    return {
        "status": decision.status.value,
        "preauth_ref": decision.preauth_ref,
        "preauth_period": vars(decision.preauth_period) if decision.preauth_period else None,
        "outcome": decision.outcome,
        "items": [{"sequence": i.sequence, "review_action": i.review_action, "status": i.status.value,
                   "auth_number": i.auth_number, "administration_reference": i.administration_reference,
                   "validity": vars(i.validity) if i.validity else None,
                   "reasons": [c.code for c in i.reason_codes], "notes": list(i.notes),
                   "authorized": [_authorized_json(a) for a in i.authorized]} for i in decision.items],
        "added_items": [_authorized_json(a) for a in decision.added_items],
        "errors": [{"code": e.code, "path": e.path, "element": e.element, "followup": e.followup}
                   for e in decision.errors],
        "information_requests": [{"reference": r.reference} for r in decision.information_requests],
        "claim_response_id": decision.claim_response_id,
        "warnings": list(decision.warnings),
    }

"""Build the PAS 2.2.1 response Bundle for a decided request.

entry[0] is the ClaimResponse (``profile-claimresponse``); after it come the request's Patient, insurer and
requestor (and whatever they reference), echoed under the request's own fullUrls (§spec-33) so the
ClaimResponse's references resolve inside the Bundle. The Claim itself is not echoed: ``request`` points at
its fullUrl and carries its identifier. Items echo ``itemSequence``; each decision is a ``reviewAction``
extension on a ``submitted`` adjudication, its code sub-extension named by the full canonical URL
(pas.md §6.1).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fhir_pa.pas import codes
from fhir_pa.pas.references import BundleIndex, iter_references
from fhir_pa_sandbox.decide import ItemDecision, new_number

Json = dict[str, Any]

ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
X12_REASON = "https://codesystem.x12.org/external/886"
X12_REJECT_REASON = f"{codes.X12}/901"
X12_FOLLOWUP = f"{codes.X12}/889"
EXT_PREAUTH_PERIOD = codes.extension("itemPreAuthPeriod")
EXT_PREAUTH_ISSUE_DATE = codes.extension("itemPreAuthIssueDate")
EXT_ADMIN_REFERENCE = codes.extension("administrationReferenceNumber")
EXT_ERROR_ELEMENT = codes.extension("errorElement")
EXT_ERROR_PATH = codes.extension("errorPath")
EXT_ERROR_FOLLOWUP = codes.extension("errorFollowupAction")
#: X12 306 (HCR01) code and display per rule action.
REVIEW_ACTION = {"approve": ("A1", "Certified in total"), "deny": ("A3", "Not Certified"),
                 "pend": ("A4", "Pended"), "modify": ("A6", "Modified")}


@dataclass(frozen=True)
class BuiltResponse:
    bundle: Json
    claim_response: Json
    preauth_ref: str | None


def _concept(system: str, code: str, display: str | None = None) -> Json:
    coding: Json = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def review_adjudication(code: str, display: str, *, number: str | None = None,
                        reason: Json | None = None) -> Json:
    """A ``submitted`` adjudication carrying the PAS reviewAction extension."""
    parts: list[Json] = []
    if number:
        parts.append({"url": "number", "valueString": number})
    parts.append({"url": codes.EXT_REVIEW_ACTION_CODE,
                  "valueCodeableConcept": _concept(codes.X12_REVIEW_ACTION, code, display)})
    if reason:
        parts.append({"url": "reasonCode", "valueCodeableConcept": reason})
    return {"extension": [{"url": codes.EXT_REVIEW_ACTION, "extension": parts}],
            "category": _concept(ADJUDICATION, "submitted")}


def _period(start: date, days: int) -> Json:
    return {"start": start.isoformat(), "end": (start + timedelta(days=days - 1)).isoformat()}


class _Builder:
    def __init__(self, request: Mapping[str, Any], decisions: Sequence[ItemDecision], now: datetime) -> None:
        self.request = request
        self.decisions = decisions
        self.now = now
        self.today = now.date()
        self.notes: list[Json] = []
        entries = request.get("entry")
        self.entries: list[Any] = entries if isinstance(entries, list) else []
        self.index = BundleIndex(self.entries)

    def note(self, text: str | None) -> list[int]:
        if not text:
            return []
        self.notes.append({"number": len(self.notes) + 1, "type": "display", "text": text})
        return [len(self.notes)]

    def authorization(self, decision: ItemDecision) -> tuple[list[Json], Json]:
        """The validity extensions and the period of an approval."""
        period = _period(decision.service_date or self.today, decision.rule.days)
        return ([{"url": EXT_PREAUTH_ISSUE_DATE, "valueDate": self.today.isoformat()},
                 {"url": EXT_PREAUTH_PERIOD, "valuePeriod": period}], period)

    def item(self, decision: ItemDecision) -> tuple[Json, Json | None, Json | None]:
        """The ClaimResponse.item, the addItem (modify only) and the authorized period (if approved)."""
        rule = decision.rule
        code, display = REVIEW_ACTION[rule.action]
        item: Json = {"itemSequence": decision.sequence}
        if rule.action == "approve":
            extensions, period = self.authorization(decision)
            item = {"extension": extensions, **item}
            item["adjudication"] = [review_adjudication(code, display, number=decision.number)]
            return item, None, period
        if rule.action == "deny":
            reason = rule.reason
            notes = self.note(rule.note or (reason.display if reason else None))
            if notes:
                item["noteNumber"] = notes
            item["adjudication"] = [review_adjudication(
                code, display, reason=_concept(X12_REASON, reason.code, reason.display) if reason else None)]
            return item, None, None
        if rule.action == "pend":
            item = {"extension": [{"url": EXT_ADMIN_REFERENCE, "valueString": decision.number}], **item}
            notes = self.note(rule.note)
            if notes:
                item["noteNumber"] = notes
            item["adjudication"] = [review_adjudication(code, display)]
            return item, None, None
        item["adjudication"] = [review_adjudication(code, display)]
        add_item, period = self.added_item(decision)
        return item, add_item, period

    def added_item(self, decision: ItemDecision) -> tuple[Json, Json]:
        """What a ``modify`` rule authorizes instead, as an addItem with the requested item's sequence."""
        authorized = decision.rule.authorized
        requested = decision.item.get("productOrService")
        requested_codings = requested.get("coding") if isinstance(requested, Mapping) else None
        first = requested_codings[0] if isinstance(requested_codings, list) and requested_codings else {}
        system = (authorized.system if authorized and authorized.system else
                  first.get("system") if isinstance(first, Mapping) else None) or codes.HCPCS
        extensions, period = self.authorization(decision)
        added: Json = {"extension": extensions, "itemSequence": [decision.sequence]}
        notes = self.note(decision.rule.note)
        if notes:
            added["noteNumber"] = notes
        code = authorized.code if authorized else str(first.get("code"))
        added["productOrService"] = _concept(system, code)
        if authorized and authorized.modifiers:
            added["modifier"] = [_concept(system, modifier) for modifier in authorized.modifiers]
        if decision.service_date:
            added["servicedDate"] = decision.service_date.isoformat()
        quantity = self.quantity(decision)
        if quantity:
            added["quantity"] = quantity
        added["adjudication"] = [review_adjudication("A1", "Certified in total", number=decision.number)]
        return added, period

    @staticmethod
    def quantity(decision: ItemDecision) -> Json | None:
        authorized = decision.rule.authorized
        requested = decision.item.get("quantity")
        if authorized is None or authorized.quantity is None:
            return dict(requested) if isinstance(requested, Mapping) else None
        value = authorized.quantity
        quantity: Json = {"value": int(value) if value.is_integer() else value}
        unit = authorized.unit or (requested.get("unit") if isinstance(requested, Mapping) else None)
        if unit:
            quantity["unit"] = unit
        return quantity

    def error(self, decision: ItemDecision) -> Json:
        """A ClaimResponse.error for an item whose rule is ``error``: X12 901 code, where, and what to do."""
        problem = decision.rule.error
        assert problem is not None  # the rules parser requires it for action "error"
        extensions: list[Json] = []
        if problem.element:
            extensions.append({"url": EXT_ERROR_ELEMENT, "extension": [{"url": "error",
                                                                       "valueString": problem.element}]})
        where = f"Bundle.entry[0].resource.item[{decision.index}].productOrService"
        extensions.append({"url": EXT_ERROR_PATH, "valueString": where})
        extensions.append({"url": EXT_ERROR_FOLLOWUP, "valueCodeableConcept": _concept(X12_FOLLOWUP,
                                                                                       problem.followup)})
        return {"extension": extensions, "itemSequence": decision.sequence,
                "code": _concept(X12_REJECT_REASON, problem.code, problem.display)}

    def target(self, reference: Any, holder: int = 0) -> tuple[Json, int | None]:
        """A reference rewritten to the target's fullUrl, and the target's entry position when it resolves."""
        ref = reference.get("reference") if isinstance(reference, Mapping) else None
        if not isinstance(ref, str):
            return {"reference": ""}, None
        holder_entry = self.entries[holder] if holder < len(self.entries) else {}
        holder_url = holder_entry.get("fullUrl") if isinstance(holder_entry, Mapping) else None
        found = self.index.resolve(ref, holder_url if isinstance(holder_url, str) else None)
        if len(found) != 1:
            return {"reference": ref}, None
        full_url = self.entries[found[0]].get("fullUrl")
        return {"reference": full_url if isinstance(full_url, str) else ref}, found[0]

    def echoed(self, starts: Sequence[int | None]) -> list[Json]:
        """The entries at ``starts`` and everything they reference (never the Claim), each once, in order."""
        seen: list[int] = []
        queue = [position for position in starts if position is not None]
        while queue:
            position = queue.pop(0)
            if position == 0 or position in seen:
                continue
            seen.append(position)
            for _, ref in iter_references(self.index.resource(position), "resource"):
                _, target = self.target({"reference": ref}, position)
                if target is not None:
                    queue.append(target)
        return [copy.deepcopy(dict(self.entries[position])) for position in seen]


def cancelled_item(sequence: int) -> Json:
    """A ClaimResponse.item the client cancelled with an update: review action ``C`` (X12 306 has no code for
    it; ``C`` is the PAS convention :mod:`fhir_pa.pas.review` reads as *cancelled*)."""
    return {"itemSequence": sequence, "adjudication": [review_adjudication("C", "Cancelled")]}


def build_response(request: Mapping[str, Any], decisions: Sequence[ItemDecision], *, fhir_base: str,
                   now: datetime | None = None, claim_response_id: str | None = None,
                   preauth_ref: str | None = None, cancelled: Sequence[int] = ()) -> BuiltResponse:
    """The PAS response Bundle for ``request`` (a checked request Bundle) and its item ``decisions``.

    A case that lives on (pended, updated) passes its ``claim_response_id`` and earlier ``preauth_ref`` so the
    ClaimResponse keeps its identity across versions; ``cancelled`` are the item sequences cancelled by updates.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = moment.isoformat(timespec="seconds").replace("+00:00", "Z")
    builder = _Builder(request, decisions, moment)
    claim = builder.index.resource(0)
    patient, patient_at = builder.target(claim.get("patient"))
    insurer, insurer_at = builder.target(claim.get("insurer"))
    requestor, requestor_at = builder.target(claim.get("provider"))

    items: list[Json] = []
    added: list[Json] = []
    errors: list[Json] = []
    periods: list[Json] = []
    for decision in decisions:
        if decision.rule.action == "error":
            errors.append(builder.error(decision))
            continue
        item, add_item, period = builder.item(decision)
        items.append(item)
        if add_item is not None:
            added.append(add_item)
        if period is not None:
            periods.append(period)

    items.extend(cancelled_item(sequence) for sequence in cancelled)
    items.sort(key=lambda item: item["itemSequence"] if isinstance(item["itemSequence"], int) else 0)
    response_id = claim_response_id or str(uuid.uuid4())
    first_entry = builder.entries[0] if builder.entries else None
    claim_url = first_entry.get("fullUrl") if isinstance(first_entry, Mapping) else None
    request_ref: Json = {"reference": claim_url} if isinstance(claim_url, str) else {}
    claim_ids = claim.get("identifier")
    if isinstance(claim_ids, list) and claim_ids:
        request_ref["identifier"] = copy.deepcopy(claim_ids[0])
    claim_type = claim.get("type")
    preauth_ref = (preauth_ref or new_number("PA")) if periods else None
    claim_response: Json = {
        "resourceType": "ClaimResponse",
        "id": response_id,
        "meta": {"profile": [codes.CLAIM_RESPONSE]},
        "identifier": copy.deepcopy(claim_ids) if isinstance(claim_ids, list) else [],
        "status": "active",
        "type": copy.deepcopy(claim_type) if isinstance(claim_type, Mapping) else _concept(codes.CLAIM_TYPE,
                                                                                          "professional"),
        "use": "preauthorization",
        "patient": patient,
        "created": stamp,
        "insurer": insurer,
        "requestor": requestor,
        "request": request_ref,
        "outcome": "error" if errors else "complete",
    }
    if not claim_response["identifier"]:
        del claim_response["identifier"]
    if preauth_ref:
        claim_response["preAuthRef"] = preauth_ref
        claim_response["preAuthPeriod"] = {"start": min(p["start"] for p in periods),
                                           "end": max(p["end"] for p in periods)}
    optional = (("item", items), ("addItem", added), ("processNote", builder.notes), ("error", errors))
    for key, value in optional:
        if value:
            claim_response[key] = value

    bundle_id = str(uuid.uuid4())
    bundle: Json = {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"profile": [codes.RESPONSE_BUNDLE]},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle_id}"},
        "type": "collection",
        "timestamp": stamp,
        "entry": [{"fullUrl": f"{fhir_base}/ClaimResponse/{response_id}", "resource": claim_response},
                  *builder.echoed([patient_at, insurer_at, requestor_at])],
    }
    return BuiltResponse(bundle, claim_response, preauth_ref)

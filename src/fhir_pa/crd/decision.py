"""The CRD answer per order: which coverage-information the payer sent for each request, and what it adds up to.

Where coverage-information is taken from, per order: ``update`` system actions (CRD 2.x, resp-25); only when a
service sends none for that order, ``update`` actions inside card suggestions (the payer RI's legacy habit; the RI
also copies some of them into systemActions, so taking both would count them twice). An update whose resource is
the IG placeholder id ``idfromcontext`` (or has no id) is matched to the one expected order of its type, or of
several, to the one whose resource (when given) orders the same code; it is never guessed beyond that.

An Appointment ``basedOn`` a ServiceRequest gets its coverage-information on the ServiceRequest (appointment-book):
pass the Appointment resource in ``order_refs`` and the decision is reported for the ServiceRequest.

Several repetitions of the extension (per coverage, billing code or period) are aggregated so that the most
demanding answer wins: one repetition needing PA means PA may be needed. Each repetition is kept for detail.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from fhir_pa.crd.cards import Action, HookResponse
from fhir_pa.crd.coverage_info import CRD_TEMP, CoverageInformation, Reason, check_coverage_information
from fhir_pa.errors import Issue

PLACEHOLDER_ID = "idfromcontext"
#: Most demanding first: the aggregate of several repetitions is the first of these any of them says.
COVERED_RANK = ("not-covered", "conditional", "indeterminate", "covered")
PA_RANK = ("auth-needed", "performpa", "conditional", "indeterminate", "satisfied", "no-auth")

SYSTEM_ACTION = "system-action"
CARD_SUGGESTION = "card-suggestion"
CLIENT = "client"


@dataclass(frozen=True)
class OrderCoverage:
    """The coverage decision for one order ("ServiceRequest/123")."""

    order: str
    information: tuple[CoverageInformation, ...]
    origin: str | None  # "system-action" | "card-suggestion" | "client" (see indeterminate) | None: nothing sent
    sources: tuple[str, ...]  # JSON paths of the actions the information came from
    issues: tuple[Issue, ...]
    from_payer: bool = True
    appointment: str | None = None  # the Appointment this order was asked about through (appointment-book)

    @property
    def legacy(self) -> bool:
        return any(i.legacy for i in self.information)

    @property
    def covered(self) -> str | None:
        return _most_demanding([i.covered for i in self.information], COVERED_RANK)

    @property
    def pa_needed(self) -> str | None:
        return _most_demanding([i.pa_needed for i in self.information], PA_RANK)

    @property
    def doc_needed(self) -> tuple[str, ...]:
        return _union(c for i in self.information for c in i.doc_needed)

    @property
    def doc_purpose(self) -> tuple[str, ...]:
        return _union(c for i in self.information for c in i.doc_purpose)

    @property
    def info_needed(self) -> tuple[str, ...]:
        return _union(c for i in self.information for c in i.info_needed)

    @property
    def questionnaires(self) -> tuple[str, ...]:
        return _union(q for i in self.information for q in i.questionnaires)

    @property
    def coverage_assertion_ids(self) -> tuple[str, ...]:
        return _union(i.coverage_assertion_id for i in self.information if i.coverage_assertion_id)

    @property
    def satisfied_pa_ids(self) -> tuple[str, ...]:
        return _union(i.satisfied_pa_id for i in self.information if i.satisfied_pa_id)

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return tuple(dict.fromkeys(r for i in self.information for r in i.reasons))


def _most_demanding(values: Sequence[str | None], rank: tuple[str, ...]) -> str | None:
    present = [v for v in values if v is not None]
    for code in rank:
        if code in present:
            return code
    return present[0] if present else None  # codes outside the value set: as sent


def _union(values: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _reference(resource: Mapping[str, Any]) -> tuple[str | None, str | None]:
    rtype, rid = resource.get("resourceType"), resource.get("id")
    return (rtype if isinstance(rtype, str) else None), (rid if isinstance(rid, str) and rid else None)


def _relative(reference: object) -> str | None:
    """"Type/id" of a relative or absolute reference (a version suffix dropped)."""
    if not isinstance(reference, str):
        return None
    parts = reference.split("/_history/", 1)[0].rstrip("/").split("/")
    return f"{parts[-2]}/{parts[-1]}" if len(parts) >= 2 and parts[-2] and parts[-1] else None


@dataclass
class _Expected:
    order: str
    appointment: str | None = None
    resource: Mapping[str, Any] | None = None


CODE_ELEMENTS = ("code", "codeCodeableConcept", "medicationCodeableConcept", "oralDiet", "lensSpecification")


def _codes(resource: Mapping[str, Any]) -> set[tuple[object, object]]:
    """(system, code) pairs of the order's code, to tell orders of one type apart."""
    found: set[tuple[object, object]] = set()
    for key in CODE_ELEMENTS:
        concept = resource.get(key)
        codings = concept.get("coding") if isinstance(concept, Mapping) else None
        for coding in codings if isinstance(codings, list) else []:
            if isinstance(coding, Mapping) and coding.get("code"):
                found.add((coding.get("system"), coding.get("code")))
    return found


def _expected(orders: Sequence[str | Mapping[str, Any]]) -> list[_Expected]:
    """Orders the caller asked about; an Appointment basedOn ServiceRequests stands for those ServiceRequests."""
    found: list[_Expected] = []
    for order in orders:
        if isinstance(order, str):
            found.append(_Expected(order))
            continue
        rtype, rid = _reference(order)
        if rtype is None or rid is None:  # not referenceable (found-36 says context resources have ids)
            continue
        ref = f"{rtype}/{rid}"
        based_on = order.get("basedOn") if rtype == "Appointment" else None
        refs = [b.get("reference") for b in based_on if isinstance(b, Mapping)] if isinstance(based_on, list) else []
        targets = [t for t in map(_relative, refs) if t and t.startswith("ServiceRequest/")]
        if targets:
            found.extend(_Expected(t, ref) for t in targets)
        else:
            found.append(_Expected(ref, resource=order))
    return found


def _target(action: Action, expected: list[_Expected], issues: dict[str, list[Issue]]) -> str | None:
    """The order an update is about: its resource's Type/id; a placeholder id is matched to the one expected order
    of that type (of several, to the one resource with the same code), else left as "Type/idfromcontext"."""
    resource = action.resource or {}
    rtype, rid = _reference(resource)
    if rtype is None:
        return None
    if rid is not None and rid != PLACEHOLDER_ID:
        return f"{rtype}/{rid}"
    same_type = [e for e in expected if e.order.startswith(f"{rtype}/")]
    placeholder = f"{rtype}/{rid or PLACEHOLDER_ID}"
    if len(same_type) > 1 and (codes := _codes(resource)):  # several: the one ordering the same code
        same_code = [e for e in same_type if e.resource is not None and _codes(e.resource) & codes]
        same_type = same_code if len(same_code) == 1 else same_type
    if len(same_type) == 1:
        return same_type[0].order
    if same_type:
        issues.setdefault(placeholder, []).append(Issue(
            action.path, f"the update's id {rid or '(none)'!r} cannot be matched: {len(same_type)} {rtype} orders",
            rule="target", severity="warning"))
    return placeholder


def coverage_decisions(response: HookResponse,
                       order_refs: Sequence[str | Mapping[str, Any]] = ()) -> tuple[OrderCoverage, ...]:
    """One :class:`OrderCoverage` per order the response has coverage-information for, plus one per expected order.

    ``order_refs`` are the orders sent in the hook ("ServiceRequest/123", or the resources themselves; an
    Appointment resource stands for the ServiceRequests it is ``basedOn``). An expected order with no
    coverage-information comes back with ``covered`` None and an issue: primary hooks must get one (hook-16).
    """
    expected = _expected(order_refs)
    extra_issues: dict[str, list[Issue]] = {}
    found: dict[str, dict[str, list[Action]]] = {}
    for action in response.actions():
        if action.type != "update" or not action.coverage_information:
            continue
        target = _target(action, expected, extra_issues)
        if target is None:
            continue
        kind = SYSTEM_ACTION if action.system_action else CARD_SUGGESTION
        found.setdefault(target, {}).setdefault(kind, []).append(action)
    appointments = {e.order: e.appointment for e in expected}
    decisions: list[OrderCoverage] = []
    for order in dict.fromkeys([*(e.order for e in expected), *found]):
        by_origin = found.get(order, {})
        origin = SYSTEM_ACTION if SYSTEM_ACTION in by_origin else CARD_SUGGESTION if by_origin else None
        actions = by_origin.get(origin, []) if origin else []
        information = tuple({_key(i): i for a in actions for i in a.coverage_information}.values())
        issues = [*extra_issues.get(order, [])]
        for info in information:
            issues.extend(check_coverage_information(info))
        if origin is None:
            issues.append(Issue(order, "the payer sent no coverage-information for this order "
                                "(primary hooks must receive it, hook-16)", rule="hook-16"))
        elif origin == CARD_SUGGESTION:
            issues.append(Issue(actions[0].path, "coverage-information came in a card suggestion, not a system "
                                "action (CRD 2.x resp-25)", rule="resp-25", severity="warning"))
        decisions.append(OrderCoverage(order, information, origin, tuple(a.path for a in actions), tuple(issues),
                                       appointment=appointments.get(order)))
    return tuple(decisions)


def _key(info: CoverageInformation) -> tuple[object, ...]:
    """Repetitions repeated verbatim (an RI copy of a suggestion) count once; the path is not part of it."""
    return tuple(v for k, v in vars(replace(info, path="")).items())


def indeterminate(order_ref: str, reason: str, *, coverage: str | None = None,
                  on: date | None = None) -> OrderCoverage:
    """The decision to record when CRD did not answer (timeout, transport or server error): everything
    ``indeterminate`` with reason ``technical`` and an assertion id of our own, marked ``from_payer=False``.

    Keeping it as coverage-information means later steps (DTR, PAS) see one shape whether or not the payer answered,
    and the user can be told plainly that CRD gave no answer (impl-1).
    """
    info = CoverageInformation(
        path=order_ref,
        coverage=coverage,
        covered="indeterminate",
        pa_needed="indeterminate",
        doc_needed=("indeterminate",),
        doc_purpose=(),
        info_needed=(),
        billing_codes=(),
        reasons=(Reason(CRD_TEMP, "technical", "Technical issues", reason),),
        details=(),
        dependencies=(),
        questionnaires=(),
        date=(on or date.today()).isoformat(),
        coverage_assertion_id=f"local-{uuid.uuid4()}",
        satisfied_pa_id=None,
        contacts=(),
        expiry_date=None,
    )
    return OrderCoverage(order_ref, (info,), CLIENT, (), (), from_payer=False)


__all__ = ["OrderCoverage", "coverage_decisions", "indeterminate"]

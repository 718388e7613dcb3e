"""Turn the sandbox's CRD rules into a CDS Hooks answer: a coverage-information update per order, plus cards.

The answer has the CRD 2.2 shape (notes/crd.md §1.7): each in-scope order comes back whole in a ``systemActions``
``update`` carrying one ``ext-coverage-information`` (so the client can merge just that), and cards tell a person
what to do next (a SMART link to fill the forms when documentation is needed).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir_pa.pas import codes as pas_codes
from fhir_pa_sandbox.crd_rules import CrdRule, CrdRules

Json = dict[str, Any]
CRD = "http://hl7.org/fhir/us/davinci-crd"
EXT_COVERAGE_INFORMATION = f"{CRD}/StructureDefinition/ext-coverage-information"
EXT_BILLING_OPTIONS = f"{CRD}/StructureDefinition/ext-billing-options"
CRD_TEMP = f"{CRD}/CodeSystem/temp"
BILLING_SYSTEMS = (pas_codes.CPT, pas_codes.HCPCS, "https://bluebutton.cms.gov/resources/codesystem/hcpcs")
PAYER = "Sandbox Health Plan"
DTR_LAUNCH = "http://sandbox.local/dtr/launch"


@dataclass(frozen=True)
class Member:
    """The patient's Coverage as the payer sees it: its reference on the client's server and its member ids."""

    coverage_ref: str | None
    member_ids: frozenset[str]


def _codings(concept: Any) -> list[Mapping[str, Any]]:
    return [c for c in (concept or {}).get("coding", []) if isinstance(c, Mapping)] if isinstance(
        concept, Mapping) else []


def billing_codings(order: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """CPT/HCPCS codings of an order: its code, and the CRD billing options on the code."""
    concept = order.get("code") or order.get("codeCodeableConcept")
    found = _codings(concept)
    for ext in (concept or {}).get("extension", []) if isinstance(concept, Mapping) else []:
        if isinstance(ext, Mapping) and ext.get("url") == EXT_BILLING_OPTIONS:
            found.extend(_codings(ext.get("valueCodeableConcept")))
    return [c for c in found if c.get("system") in BILLING_SYSTEMS and isinstance(c.get("code"), str)]


def _sub(url: str, **value: Any) -> Json:
    return {"url": url, **value}


def coverage_information(rule: CrdRule | None, member: Member, billing: Sequence[Mapping[str, Any]],
                         today: str) -> Json:
    """One ext-coverage-information; ``rule`` None means the member is unknown (not covered)."""
    parts: list[Json] = []
    if member.coverage_ref:
        parts.append(_sub("coverage", valueReference={"reference": member.coverage_ref}))
    if rule is None:
        parts += [_sub("covered", valueCode="not-covered"),
                  _sub("reason", valueCodeableConcept={"coding": [{"system": CRD_TEMP, "code": "no-member-found"}],
                                                       "text": f"{PAYER} has no member with this id"})]
    else:
        parts += [_sub("covered", valueCode="covered"), _sub("pa-needed", valueCode=rule.pa)]
        parts += [_sub("doc-needed", valueCode=code) for code in rule.doc]
        parts += [_sub("doc-purpose", valueCode=code) for code in rule.doc_purpose]
        if rule.doc_purpose:
            label = rule.label or "this service"
            parts.append(_sub("reason", valueCodeableConcept={"text": f"{PAYER} policy for {label}"}))
        parts += [_sub("billingCode", valueCoding={"system": c["system"], "code": c["code"]}) for c in billing]
        parts += [_sub("questionnaire", valueCanonical=q) for q in rule.questionnaires]
        if rule.satisfied_pa_id:
            parts.append(_sub("satisfied-pa-id", valueString=rule.satisfied_pa_id))
    parts += [_sub("date", valueDate=today), _sub("coverage-assertion-id", valueString=f"SBX-{uuid.uuid4().hex[:16]}")]
    return {"url": EXT_COVERAGE_INFORMATION, "extension": parts}


def _with_information(order: Mapping[str, Any], information: Json) -> Json:
    updated = copy.deepcopy(dict(order))
    kept = [e for e in updated.get("extension", []) if not (isinstance(e, Mapping)
                                                            and e.get("url") == EXT_COVERAGE_INFORMATION)]
    updated["extension"] = [*kept, information]
    return updated


def _cards(order_ref: str, rule: CrdRule | None, label: str, information: Json) -> list[Json]:
    source = {"label": PAYER}
    if rule is None:
        return [{"uuid": str(uuid.uuid4()), "summary": f"{PAYER}: member not found; {label} is not covered",
                 "indicator": "warning", "source": source,
                 "extension": {"davinci-crd.associated-resource": [{"reference": order_ref}]}}]
    cards: list[Json] = []
    if rule.pa == "auth-needed":
        cards.append({"uuid": str(uuid.uuid4()), "summary": f"Prior authorization required: {label}"[:140],
                      "detail": f"{PAYER} requires prior authorization for **{label}**. Submit it with PAS.",
                      "indicator": "info", "source": source,
                      "extension": {"davinci-crd.associated-resource": [{"reference": order_ref}]}})
    if rule.doc:
        assertion = next(p["valueString"] for p in information["extension"] if p["url"] == "coverage-assertion-id")
        cards.append({"uuid": str(uuid.uuid4()), "summary": f"Documentation needed: {label}"[:140],
                      "indicator": "info", "source": source,
                      "links": [{"label": "Complete the documentation (DTR)", "url": DTR_LAUNCH, "type": "smart",
                                 "appContext": f"order={order_ref}&coverageAssertionId={assertion}"}],
                      "extension": {"davinci-crd.associated-resource": [{"reference": order_ref}]}})
    return cards


def decide(orders: Sequence[Mapping[str, Any]], member: Member, rules: CrdRules, *,
           now: datetime | None = None) -> Json:
    """The CDS Hooks response for ``orders`` (the request resources in scope) of one patient."""
    today = (now or datetime.now(UTC)).date().isoformat()
    known = rules.known_member(set(member.member_ids))
    cards: list[Json] = []
    actions: list[Json] = []
    for order in orders:
        billing = billing_codings(order)
        rule = rules.for_code(billing[0]["code"]) if billing else rules.default
        label = rule.label if rule.label and billing else (billing[0]["code"] if billing else "this order")
        information = coverage_information(rule if known else None, member, billing, today)
        order_ref = f"{order.get('resourceType')}/{order.get('id')}"
        actions.append({"type": "update", "description": f"Coverage information for {order_ref}",
                        "resource": _with_information(order, information)})
        cards += _cards(order_ref, rule if known else None, label, information)
    return {"cards": cards, "systemActions": actions}

"""The JSON view of a CRD response (``fhir-pa crd explain --json``): per order, then per card.

Keys are written out one by one, not derived from the dataclasses, so scripts that read them do not break when a
dataclass gains a field. JSON types only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir_pa.crd.cards import Action, Card, HookResponse, Link
from fhir_pa.crd.coverage_info import Contact, CoverageInformation, Detail, Reason
from fhir_pa.crd.decision import OrderCoverage, coverage_decisions
from fhir_pa.errors import Issue
from fhir_pa.pas.decision_types import Coding, Period, Quantity


def _coding(coding: Coding | None) -> dict[str, Any] | None:
    return None if coding is None else {"system": coding.system, "code": coding.code, "display": coding.display}


def _reason(reason: Reason) -> dict[str, Any]:
    return {"system": reason.system, "code": reason.code, "display": reason.display, "text": reason.text}


def _value(value: bool | str | Quantity | Period | None) -> Any:
    if isinstance(value, Quantity):
        return {"value": value.value, "unit": value.unit}
    if isinstance(value, Period):
        return {"start": value.start, "end": value.end}
    return value


def _detail(detail: Detail) -> dict[str, Any]:
    return {"category": detail.category, "code": [_coding(c) for c in detail.code], "value": _value(detail.value),
            "qualification": detail.qualification}


def _contact(contact: Contact) -> dict[str, Any]:
    return {"name": contact.name,
            "telecom": [{"system": t.system, "value": t.value, "use": t.use} for t in contact.telecom]}


def _issue(issue: Issue) -> dict[str, Any]:
    return {"path": issue.path, "rule": issue.rule, "severity": issue.severity, "message": issue.message}


def _information(info: CoverageInformation) -> dict[str, Any]:
    return {
        "path": info.path,
        "coverage": info.coverage,
        "covered": info.covered,
        "pa_needed": info.pa_needed,
        "doc_needed": list(info.doc_needed),
        "doc_purpose": list(info.doc_purpose),
        "info_needed": list(info.info_needed),
        "billing_codes": [_coding(c) for c in info.billing_codes],
        "reasons": [_reason(r) for r in info.reasons],
        "details": [_detail(d) for d in info.details],
        "dependencies": list(info.dependencies),
        "questionnaires": list(info.questionnaires),
        "date": info.date,
        "expiry_date": info.expiry_date,
        "coverage_assertion_id": info.coverage_assertion_id,
        "satisfied_pa_id": info.satisfied_pa_id,
        "contacts": [_contact(c) for c in info.contacts],
        "legacy": info.legacy,
    }


def order_json(decision: OrderCoverage) -> dict[str, Any]:
    ids, pa_ids = decision.coverage_assertion_ids, decision.satisfied_pa_ids
    return {
        "order": decision.order,
        "covered": decision.covered,
        "pa_needed": decision.pa_needed,
        "doc_needed": list(decision.doc_needed),
        "doc_purpose": list(decision.doc_purpose),
        "info_needed": list(decision.info_needed),
        "questionnaires": list(decision.questionnaires),
        "coverage_assertion_id": ids[0] if ids else None,
        "satisfied_pa_id": pa_ids[0] if pa_ids else None,
        "reasons": [_reason(r) for r in decision.reasons],
        "origin": decision.origin,
        "from_payer": decision.from_payer,
        "legacy": decision.legacy,
        "appointment": decision.appointment,
        "sources": list(decision.sources),
        "issues": [_issue(i) for i in decision.issues],
        "information": [_information(i) for i in decision.information],
    }


def _link(link: Link) -> dict[str, Any]:
    return {"label": link.label, "url": link.url, "type": link.type, "app_context": link.app_context,
            "smart_launch": link.smart_launch}


def _action(action: Action) -> dict[str, Any]:
    return {"path": action.path, "type": action.type, "description": action.description, "target": action.target,
            "resource_type": action.resource_type, "if_none_exist": action.if_none_exist,
            "coverage_information": bool(action.coverage_information)}


def card_json(card: Card) -> dict[str, Any]:
    return {
        "uuid": card.uuid,
        "summary": card.summary,
        "indicator": card.indicator.value,
        "detail": card.detail,
        "card_type": card.card_type,
        "source": {"label": card.source.label, "url": card.source.url, "topic": _coding(card.source.topic)},
        "links": [_link(link) for link in card.links],
        "suggestions": [{"label": s.label, "uuid": s.uuid, "is_recommended": s.is_recommended,
                         "actions": [_action(a) for a in s.actions]} for s in card.suggestions],
        "selection_behavior": card.selection_behavior,
        "associated_resources": list(card.associated_resources),
    }


def explain_json(response: HookResponse, decisions: Sequence[OrderCoverage] | None = None) -> dict[str, Any]:
    """``orders`` (one per :class:`OrderCoverage`), ``cards``, ``system_actions`` and reading ``warnings``.

    ``decisions`` defaults to :func:`coverage_decisions` of the response with no expected orders.
    """
    chosen = coverage_decisions(response) if decisions is None else decisions
    return {
        "source": response.source,
        "orders": [order_json(d) for d in chosen],
        "cards": [card_json(c) for c in response.cards],
        "system_actions": [_action(a) for a in response.system_actions],
        "warnings": list(response.warnings),
    }


__all__ = ["card_json", "explain_json", "order_json"]

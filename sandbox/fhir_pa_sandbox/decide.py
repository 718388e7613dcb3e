"""Apply the rules table to each item of a Claim: which rule, which service date, which numbers.

Each item is matched by the codes of its ``productOrService`` (the first coded one the table knows wins;
otherwise the table's default). Numbers are random and prefixed so a person reading a response can tell
them apart: ``AUTH-`` (item certification number), ``PEND-`` (administration reference), ``PA-`` (preAuthRef).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir_pa_sandbox.rules import Rule, RulesTable


def new_number(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(5).upper()}"


@dataclass(frozen=True)
class ItemDecision:
    #: Position of the item in ``Claim.item`` (for FHIRPath locations).
    index: int
    sequence: int
    item: Mapping[str, Any]
    #: The code whose rule applied; None when the default rule applied.
    matched_code: str | None
    rule: Rule
    service_date: date | None
    #: Certification number (approve, modify) or administration reference number (pend).
    number: str | None

    @property
    def approved(self) -> bool:
        return self.rule.action in ("approve", "modify")


def item_codes(item: Mapping[str, Any]) -> list[str]:
    concept = item.get("productOrService")
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    return [coding["code"] for coding in codings or []
            if isinstance(coding, Mapping) and isinstance(coding.get("code"), str)]


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def service_date(item: Mapping[str, Any]) -> date | None:
    """When the service starts: ``servicedDate`` or ``servicedPeriod.start``."""
    if "servicedDate" in item:
        return _date(item["servicedDate"])
    period = item.get("servicedPeriod")
    return _date(period.get("start")) if isinstance(period, Mapping) else None


_PREFIX = {"approve": "AUTH", "modify": "AUTH", "pend": "PEND"}


def decide(claim: Mapping[str, Any], rules: RulesTable) -> list[ItemDecision]:
    """One decision per Claim item, in item order."""
    decisions: list[ItemDecision] = []
    items = claim.get("item")
    for index, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, Mapping):
            continue
        sequence = item.get("sequence")
        code, rule = rules.rule_for(item_codes(item))
        prefix = _PREFIX.get(rule.action)
        decisions.append(ItemDecision(
            index=index,
            sequence=sequence if isinstance(sequence, int) and not isinstance(sequence, bool) else index + 1,
            item=item, matched_code=code, rule=rule, service_date=service_date(item),
            number=new_number(prefix) if prefix else None,
        ))
    return decisions

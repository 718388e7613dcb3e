"""The life of one prior authorization at the sandbox payer: a *case*, from first ``$submit`` to final answer.

A case keeps one ClaimResponse id for its whole life; every change (a pended item decided, an update, a
cancel) rebuilds the response from the current item decisions and bumps ``meta.versionId``. Cases are found
by ClaimResponse id and by every Claim identifier the request has had (original and updates), which is how
reads, searches, updates and ``$inquire`` reach them.

All reads and changes of a case happen under :attr:`CaseStore.lock`: request handlers and the scheduler
thread both touch cases.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from fhir_pa_sandbox.decide import ItemDecision, new_number
from fhir_pa_sandbox.responses import build_response

Json = dict[str, Any]


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decided_later(decision: ItemDecision) -> ItemDecision:
    """The final decision of a pended item, by its rule's ``then``."""
    rule = decision.rule.later()
    number = new_number("AUTH") if rule.action in ("approve", "modify") else None
    return replace(decision, rule=rule, number=number)


@dataclass
class Case:
    #: The stats key: the first request's Bundle identifier (or the ClaimResponse id when it had none).
    key: str
    claim_response_id: str
    fhir_base: str
    #: The newest request Bundle (the original, or the latest update).
    request: Mapping[str, Any]
    created: str
    sender_id: str | None
    patient_keys: frozenset[str]
    provider_npis: frozenset[str]
    #: Current decision of each item not cancelled, by item sequence.
    decisions: dict[int, ItemDecision] = field(default_factory=dict)
    #: Pended item sequences → monotonic time their decision is due.
    due: dict[int, float] = field(default_factory=dict)
    cancelled: set[int] = field(default_factory=set)
    claim_identifiers: list[str] = field(default_factory=list)
    #: Every number the payer gave this case (preAuthRef, item AUTH-/PEND- numbers): ``$inquire`` keys.
    numbers: set[str] = field(default_factory=set)
    service_codes: set[str] = field(default_factory=set)
    preauth_ref: str | None = None
    version: int = 0
    response: Json = field(default_factory=dict)
    claim_response: Json = field(default_factory=dict)

    @property
    def pending(self) -> bool:
        return bool(self.due)

    def closed(self) -> str | None:
        """``cancelled`` or ``denied`` when the request can no longer be updated, else None."""
        if not self.decisions:
            return "cancelled" if self.cancelled else None
        if not self.due and all(d.rule.action == "deny" for d in self.decisions.values()):
            return "denied"
        return None

    def pend(self, decision: ItemDecision, now: float, scale: float) -> None:
        """Record ``decision``; a pend is due ``after_seconds times scale`` from ``now``."""
        self.decisions[decision.sequence] = decision
        self.cancelled.discard(decision.sequence)
        if decision.rule.action == "pend":
            self.due[decision.sequence] = now + decision.rule.after_seconds * scale
        else:
            self.due.pop(decision.sequence, None)

    def cancel(self, sequences: Iterable[int]) -> None:
        for sequence in sequences:
            self.decisions.pop(sequence, None)
            self.due.pop(sequence, None)
            self.cancelled.add(sequence)

    def rebuild(self, now: datetime | None = None) -> None:
        """Build the current response from the item decisions: same ClaimResponse id, next version."""
        moment = now or datetime.now(UTC)
        ordered = sorted(self.decisions.values(), key=lambda d: d.sequence)
        built = build_response(self.request, ordered, fhir_base=self.fhir_base, now=moment,
                               claim_response_id=self.claim_response_id, preauth_ref=self.preauth_ref,
                               cancelled=sorted(self.cancelled))
        self.version += 1
        self.preauth_ref = built.preauth_ref or self.preauth_ref
        claim_response = built.claim_response
        claim_response["meta"] = {"versionId": str(self.version), "lastUpdated": stamp(moment),
                                  **claim_response["meta"]}
        claim_response["created"] = self.created
        self.claim_response, self.response = claim_response, built.bundle
        self.numbers.update(d.number for d in ordered if d.number)
        if self.preauth_ref:
            self.numbers.add(self.preauth_ref)
        self.service_codes.update(code for d in ordered for code in _codes(d))

    def snapshot(self) -> Json:
        """A copy of the current response Bundle, safe to hand to another thread."""
        return copy.deepcopy(self.response)


def _codes(decision: ItemDecision) -> list[str]:
    concept = decision.item.get("productOrService")
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    return [c["code"] for c in codings or [] if isinstance(c, Mapping) and isinstance(c.get("code"), str)]


class CaseStore:
    """Cases by ClaimResponse id and by Claim identifier (``system|value``)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._cases: dict[str, Case] = {}
        self._by_claim: dict[str, str] = {}

    def add(self, case: Case) -> None:
        with self.lock:
            self._cases[case.claim_response_id] = case
            self.index(case, case.claim_identifiers)

    def index(self, case: Case, claim_identifiers: Iterable[str]) -> None:
        """Let ``case`` be found by these Claim identifiers too (an update's own identifier)."""
        with self.lock:
            for key in claim_identifiers:
                if key not in case.claim_identifiers:
                    case.claim_identifiers.append(key)
                self._by_claim[key] = case.claim_response_id

    def get(self, claim_response_id: str) -> Case | None:
        with self.lock:
            return self._cases.get(claim_response_id)

    def by_claim(self, keys: Iterable[str]) -> Case | None:
        """The case of the first of ``keys`` (Claim identifiers) that names one."""
        with self.lock:
            for key in keys:
                found = self._by_claim.get(key)
                if found is not None:
                    return self._cases[found]
            return None

    def all(self) -> list[Case]:
        with self.lock:
            return list(self._cases.values())

    def pending(self) -> list[Case]:
        with self.lock:
            return [case for case in self._cases.values() if case.pending]

"""Prior-authorization metrics from the ledger: states, decision times, approvals, denial reasons, CMS clocks.

Everything is counted per case (see :mod:`fhir_pa.metrics.cases`): an update or a cancel is never a second
request. A time window selects cases by when the payer received the original request, so a window's figures do
not change as later answers arrive, only its open cases close.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from fhir_pa.ledger.clock import ClockCounts
from fhir_pa.ledger.store import Ledger
from fhir_pa.metrics.cases import Case, as_utc, load_cases, payer_is, submitted_between
from fhir_pa.metrics.deadlines import clock_as_json, count_clock
from fhir_pa.metrics.durations import METHOD, DurationStats, duration_stats, stats_as_json
from fhir_pa.metrics.reasons import denial_reasons

#: States that count as an approval: the payer authorized at least part of what was asked.
APPROVAL_STATES = frozenset({"approved", "partial", "modified"})
DENIAL_STATES = frozenset({"denied"})
#: Urgencies always reported, even with no case, so the output has a fixed shape.
URGENCIES = ("standard", "expedited")


@dataclass(frozen=True)
class ReasonCount:
    reason: str
    count: int


@dataclass(frozen=True)
class UrgencyMetrics:
    urgency: str
    cases: int
    decision_time: DurationStats
    clock: ClockCounts


@dataclass(frozen=True)
class PriorAuthMetrics:
    """The figures for the selected cases; ``as_of`` is the moment open cases were measured against."""

    payer: str | None
    since: datetime | None
    until: datetime | None
    as_of: datetime
    cases: int
    by_state: Mapping[str, int]
    decision_time: DurationStats
    by_urgency: tuple[UrgencyMetrics, ...]
    approvals: int
    denials: int
    denial_reasons: tuple[ReasonCount, ...]
    clock: ClockCounts

    @property
    def approval_rate(self) -> float | None:
        """Approvals among approvals and denials (None before either)."""
        decided = self.approvals + self.denials
        return self.approvals / decided if decided else None

    def urgency(self, name: str) -> UrgencyMetrics:
        return next(u for u in self.by_urgency if u.urgency == name)


def _seconds(case: Case) -> float | None:
    if case.submitted_at is None or case.decided_at is None:
        return None
    return (case.decided_at - case.submitted_at).total_seconds()


def _durations(cases: Sequence[Case]) -> DurationStats:
    return duration_stats([s for s in map(_seconds, cases) if s is not None])


def summarize(cases: Sequence[Case], *, now: datetime, payer: str | None = None, since: datetime | None = None,
              until: datetime | None = None) -> PriorAuthMetrics:
    """The metrics of ``cases`` as they stand at ``now`` (pure: no ledger access)."""
    now = as_utc(now)
    urgencies = [*URGENCIES, *sorted({c.urgency for c in cases} - set(URGENCIES))]
    by_urgency = tuple(
        UrgencyMetrics(urgency=u, cases=len(group), decision_time=_durations(group), clock=count_clock(group, now))
        for u in urgencies for group in [[c for c in cases if c.urgency == u]])
    reasons: Counter[str] = Counter()
    for case in cases:
        if case.state in DENIAL_STATES:
            reasons.update(denial_reasons(case.decision_body))
    states = Counter(c.state for c in cases)
    return PriorAuthMetrics(
        payer=payer, since=since, until=until, as_of=now, cases=len(cases),
        by_state=MappingProxyType(dict(sorted(states.items(), key=lambda kv: (-kv[1], kv[0])))),
        decision_time=_durations(cases), by_urgency=by_urgency,
        approvals=sum(1 for c in cases if c.state in APPROVAL_STATES),
        denials=sum(1 for c in cases if c.state in DENIAL_STATES),
        denial_reasons=tuple(ReasonCount(r, n) for r, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        clock=count_clock(cases, now),
    )


def prior_auth_metrics(ledger: Ledger, *, payer: str | None = None, since: datetime | None = None,
                       until: datetime | None = None, now: datetime | None = None) -> PriorAuthMetrics:
    """Metrics for the cases sent to ``payer`` (any, if None) whose original request the payer received in
    ``[since, until)``. With no bound at all, cases never sent are included too (as prepared, failed, ...)."""
    where = submitted_between(since, until)
    if payer is not None:
        where.append(payer_is(payer))
    cases = load_cases(ledger, where=where, answer_states=DENIAL_STATES)
    return summarize(cases, now=now or datetime.now(UTC), payer=payer,
                     since=as_utc(since) if since else None, until=as_utc(until) if until else None)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def metrics_as_json(metrics: PriorAuthMetrics) -> dict[str, Any]:
    """The JSON view (``fhir-pa metrics --json``): fixed keys, seconds for durations."""
    return {
        "filters": {"payer": metrics.payer, "since": _iso(metrics.since), "until": _iso(metrics.until)},
        "as_of": metrics.as_of.isoformat(),
        "cases": metrics.cases,
        "by_state": dict(metrics.by_state),
        "approvals": metrics.approvals,
        "denials": metrics.denials,
        "approval_rate": metrics.approval_rate,
        "denial_reasons": {r.reason: r.count for r in metrics.denial_reasons},
        "percentile_method": METHOD,
        "decision_time_seconds": {
            "all": stats_as_json(metrics.decision_time),
            **{u.urgency: stats_as_json(u.decision_time) for u in metrics.by_urgency},
        },
        "cms_clock": {
            "all": clock_as_json(metrics.clock),
            **{u.urgency: clock_as_json(u.clock) for u in metrics.by_urgency},
        },
        "cases_by_urgency": {u.urgency: u.cases for u in metrics.by_urgency},
    }

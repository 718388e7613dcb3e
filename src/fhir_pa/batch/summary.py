"""The numbers of a batch run, from its rows: outcomes, throughput, decision times and the CMS clocks.

Everything here is computed from :class:`~fhir_pa.batch.rows.BatchRow` alone, which carries no patient data, so
a summary (and everything printed or written from it) carries none either.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from fhir_pa.batch.rows import OUTCOMES, BatchRow, Outcome
from fhir_pa.errors import InputError
from fhir_pa.ledger.clock import ClockCounts, format_seconds

if TYPE_CHECKING:
    from rich.console import Console

Urgency = Literal["expedited", "standard"]
URGENCIES: tuple[Urgency, ...] = ("expedited", "standard")

#: Outcomes that are a payer's final decision: only these are timed.
DECIDED_OUTCOMES: frozenset[Outcome] = frozenset({"approved", "partial", "modified", "denied"})
#: How the decision-time percentiles are computed (written into the JSON so readers know).
PERCENTILE_METHOD = ("statistics.quantiles(n=100, method='inclusive'): linear interpolation between order "
                     "statistics (numpy's default); a single value is every percentile")


@dataclass(frozen=True)
class DecisionTimes:
    """Seconds from first delivery to final decision, over the decided requests of a group."""

    count: int = 0
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, seconds: Iterable[float]) -> DecisionTimes:
        data = sorted(seconds)
        if not data:
            return cls()
        if len(data) == 1:  # statistics.quantiles needs two points before Python 3.13
            return cls(1, data[0], data[0], data[0], data[0])
        cuts = statistics.quantiles(data, n=100, method="inclusive")
        return cls(len(data), cuts[49], cuts[89], cuts[98], data[-1])

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "p50": self.p50, "p90": self.p90, "p99": self.p99, "max": self.max}


@dataclass(frozen=True)
class BatchSummary:
    """What a batch run came to. Build it with :func:`summarize`."""

    now: datetime
    started_at: datetime
    finished_at: datetime
    total: int
    #: Every outcome, in ``OUTCOMES`` order, with its count (zeros included).
    outcomes: tuple[tuple[Outcome, int], ...]
    #: Orders that reached the payer: a CMS clock runs for them.
    submitted: int
    decision_times: DecisionTimes
    decision_times_by_urgency: tuple[tuple[Urgency, DecisionTimes], ...]
    clocks: tuple[tuple[Urgency, ClockCounts], ...]
    #: Payer denial reasons, each with the number of orders that got it; most frequent first.
    denial_reasons: tuple[tuple[str, int], ...] = ()
    #: Error codes, each with the number of orders it stopped; most frequent first.
    error_codes: tuple[tuple[str, int], ...] = ()

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def orders_per_second(self) -> float | None:
        """Orders (all of them, whatever their outcome) per second of the run; None for a run of no length."""
        duration = self.duration_seconds
        return self.total / duration if duration > 0 else None

    def count(self, outcome: Outcome) -> int:
        return dict(self.outcomes).get(outcome, 0)

    def share(self, outcome: Outcome) -> float:
        """The fraction of all orders that ended with ``outcome`` (0.0 for an empty run)."""
        return self.count(outcome) / self.total if self.total else 0.0

    def times_for(self, urgency: Urgency) -> DecisionTimes:
        return dict(self.decision_times_by_urgency).get(urgency, DecisionTimes())

    def clock_for(self, urgency: Urgency) -> ClockCounts:
        return dict(self.clocks).get(urgency, ClockCounts())

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types only; key order is stable."""
        return {
            "now": self.now.isoformat(),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_seconds": self.duration_seconds,
            "total": self.total,
            "orders_per_second": self.orders_per_second,
            "outcomes": {outcome: count for outcome, count in self.outcomes},
            "submitted": self.submitted,
            "decision_seconds": {
                "method": PERCENTILE_METHOD,
                "all": self.decision_times.as_dict(),
                **{urgency: times.as_dict() for urgency, times in self.decision_times_by_urgency},
            },
            "clocks": {urgency: counts.as_dict() for urgency, counts in self.clocks},
            "denial_reasons": [{"reason": reason, "count": count} for reason, count in self.denial_reasons],
            "error_codes": [{"code": code, "count": count} for code, count in self.error_codes],
        }


def payer_decision_seconds(row: BatchRow) -> float | None:
    """The row's decision time when the payer decided it (approved, partial, modified, denied), else None.

    A cancelled request's end is our own doing, not a decision, so it is not timed.
    """
    return row.decision_seconds if row.outcome in DECIDED_OUTCOMES else None


def urgency_of(row: BatchRow) -> Urgency:
    """The row's urgency; anything but ``expedited`` runs on the standard clock, as in the ledger."""
    return "expedited" if row.urgency == "expedited" else "standard"


def summarize(rows: Sequence[BatchRow], *, now: datetime, started_at: datetime,
              finished_at: datetime) -> BatchSummary:
    """The summary of a run. ``now`` decides open vs overdue for requests still without a decision.

    Decision times are taken from the rows the payer decided (:data:`DECIDED_OUTCOMES`) that have both
    ``submitted_at`` and ``decided_at``; clocks from :meth:`BatchRow.clock` of every row. Denial reasons
    are counted once per order (an order denied twice for the same reason counts once); an ``error`` row
    without an ``error_code`` counts under ``unknown``.
    """
    counts: Counter[str] = Counter()
    seconds: dict[Urgency, list[float]] = {urgency: [] for urgency in URGENCIES}
    clocks: dict[Urgency, Counter[str]] = {urgency: Counter() for urgency in URGENCIES}
    reasons: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for row in rows:
        if row.outcome not in OUTCOMES:
            raise InputError(f"batch row {row.order_id!r} has an unknown outcome {row.outcome!r}")
        counts[row.outcome] += 1
        urgency = urgency_of(row)
        took = payer_decision_seconds(row)
        if took is not None:
            seconds[urgency].append(took)
        clock = row.clock(now)
        if clock is not None:
            clocks[urgency][clock] += 1
        reasons.update({reason.strip() for reason in row.denial_reasons if reason.strip()})
        if row.error_code is not None or row.outcome == "error":
            errors[row.error_code or "unknown"] += 1
    clock_counts = tuple(
        (urgency, ClockCounts(on_time=c["on-time"], late=c["late"], open=c["open"], overdue=c["overdue"]))
        for urgency, c in clocks.items()
    )
    return BatchSummary(
        now=now,
        started_at=started_at,
        finished_at=finished_at,
        total=len(rows),
        outcomes=tuple((outcome, counts[outcome]) for outcome in OUTCOMES),
        submitted=sum(counts.total for _, counts in clock_counts),
        decision_times=DecisionTimes.of(value for values in seconds.values() for value in values),
        decision_times_by_urgency=tuple((urgency, DecisionTimes.of(seconds[urgency])) for urgency in URGENCIES),
        clocks=clock_counts,
        denial_reasons=_ranked(reasons),
        error_codes=_ranked(errors),
    )


def _ranked(counter: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


# --- human forms ---------------------------------------------------------------------------------------------


def format_share(share: float) -> str:
    return f"{share * 100:.1f}%"


def decision_times_line(summary: BatchSummary) -> str:
    """One line: overall percentiles, then the p50/max per urgency."""
    times = summary.decision_times
    if not times.count:
        return "decision times: no decisions yet"
    parts = [f"decision times (n={times.count}): p50 {format_seconds(times.p50)}, p90 {format_seconds(times.p90)}, "
             f"p99 {format_seconds(times.p99)}, max {format_seconds(times.max)}"]
    for urgency, group in summary.decision_times_by_urgency:
        if group.count:
            parts.append(f"{urgency} p50 {format_seconds(group.p50)} (n={group.count})")
    return "; ".join(parts)


def clocks_line(summary: BatchSummary) -> str:
    """One line: per urgency, on-time / late / open / overdue against the 72 h and 7 day clocks."""
    parts = []
    for urgency, counts in summary.clocks:
        limit = "72 h" if urgency == "expedited" else "7 d"
        parts.append(f"{urgency} ({limit}) {counts.on_time} on time, {counts.late} late, "
                     f"{counts.open} open, {counts.overdue} overdue")
    return "CMS clocks: " + "; ".join(parts)


def print_summary(console: Console, summary: BatchSummary) -> None:
    """A heading line, a compact table of outcomes (zero rows left out) with a total, then a line of decision
    times and one of clocks. Plain text apart from the table, so a recording console gives the same output."""
    from rich.table import Table

    rate = summary.orders_per_second
    rate_text = f", {rate:.2f} orders/s" if rate is not None else ""
    table = Table(show_footer=True)
    table.add_column("outcome", footer="total")
    table.add_column("count", justify="right", footer=str(summary.total))
    table.add_column("share", justify="right", footer=format_share(1.0 if summary.total else 0.0))
    for outcome, count in summary.outcomes:
        if count:
            table.add_row(outcome, str(count), format_share(summary.share(outcome)))
    console.print(f"batch: {summary.total} orders in {format_seconds(summary.duration_seconds)}{rate_text}",
                  markup=False, highlight=False)
    console.print(table)
    console.print(decision_times_line(summary), markup=False, highlight=False)
    console.print(clocks_line(summary), markup=False, highlight=False)


__all__ = [
    "DECIDED_OUTCOMES",
    "PERCENTILE_METHOD",
    "URGENCIES",
    "BatchSummary",
    "ClockCounts",
    "DecisionTimes",
    "Urgency",
    "clocks_line",
    "decision_times_line",
    "format_seconds",
    "format_share",
    "payer_decision_seconds",
    "print_summary",
    "summarize",
    "urgency_of",
]

"""Where a case stands against its CMS decision clock (CMS-0057-F: 72 hours expedited, 7 calendar days standard).

The clock is the original request's (``ledger.clock`` sets it on first delivery), and a case is decided once any
request of it got a final answer. The class names are those of the batch report, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from fhir_pa.metrics.cases import Case


class ClockClass(StrEnum):
    ON_TIME = "on-time"  # decided at or before the deadline
    LATE = "late"  # decided after the deadline
    OPEN = "open"  # no final answer yet, deadline not passed
    OVERDUE = "overdue"  # no final answer yet, deadline passed
    NOT_STARTED = "not-started"  # never reached the payer: no clock runs


def classify(case: Case, now: datetime) -> ClockClass:
    if case.deadline_at is None:
        return ClockClass.NOT_STARTED
    if case.decided_at is not None:
        return ClockClass.ON_TIME if case.decided_at <= case.deadline_at else ClockClass.LATE
    return ClockClass.OPEN if now <= case.deadline_at else ClockClass.OVERDUE


@dataclass(frozen=True)
class ClockCounts:
    on_time: int = 0
    late: int = 0
    open: int = 0
    overdue: int = 0
    not_started: int = 0


def count_clock(cases: Iterable[Case], now: datetime) -> ClockCounts:
    tally = dict.fromkeys(ClockClass, 0)
    for case in cases:
        tally[classify(case, now)] += 1
    return ClockCounts(on_time=tally[ClockClass.ON_TIME], late=tally[ClockClass.LATE], open=tally[ClockClass.OPEN],
                       overdue=tally[ClockClass.OVERDUE], not_started=tally[ClockClass.NOT_STARTED])


def clock_as_json(counts: ClockCounts) -> dict[str, int]:
    return {"decided_on_time": counts.on_time, "decided_late": counts.late, "open_within_clock": counts.open,
            "open_past_clock": counts.overdue, "not_started": counts.not_started}

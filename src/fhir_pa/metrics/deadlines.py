"""Where a case stands against its CMS decision clock (CMS-0057-F: 72 hours expedited, 7 calendar days standard).

The clock is the original request's (``ledger.clock`` sets it on first delivery), and a case is decided once any
request of it got a final answer. The class names are those of the batch report, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from fhir_pa.ledger.clock import ClockCounts, standing
from fhir_pa.metrics.cases import Case


class ClockClass(StrEnum):
    ON_TIME = "on-time"  # decided at or before the deadline
    LATE = "late"  # decided after the deadline
    OPEN = "open"  # no final answer yet, deadline not passed
    OVERDUE = "overdue"  # no final answer yet, deadline passed
    NOT_STARTED = "not-started"  # never reached the payer: no clock runs


def classify(case: Case, now: datetime) -> ClockClass:
    found = standing(case.deadline_at, case.decided_at, now)
    return ClockClass.NOT_STARTED if found is None else ClockClass(found)


def count_clock(cases: Iterable[Case], now: datetime) -> ClockCounts:
    return ClockCounts.of(standing(case.deadline_at, case.decided_at, now) for case in cases)


def clock_as_json(counts: ClockCounts) -> dict[str, int]:
    return counts.as_dict()

"""The CMS decision clock (CMS-0057-F): 72 hours for expedited requests, 7 calendar days for standard."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, overload

LIMITS = {"expedited": timedelta(hours=72), "standard": timedelta(days=7)}


def deadline(submitted_at: datetime, urgency: str) -> datetime:
    """When the payer's decision is due for a request received at ``submitted_at``."""
    return submitted_at + LIMITS.get(urgency, LIMITS["standard"])


#: Where a request stands on its clock: decided in time or late; undecided and still within it (open) or past it.
Standing = Literal["on-time", "late", "open", "overdue"]


def standing(deadline_at: datetime | None, decided_at: datetime | None, now: datetime) -> Standing | None:
    """A request's place on its CMS clock at ``now``; None when it never reached the payer (no clock runs).

    The batch report and ``fhir-pa metrics`` both ask this, so the two never disagree."""
    if deadline_at is None:
        return None
    if decided_at is not None:
        return "on-time" if decided_at <= deadline_at else "late"
    return "open" if now <= deadline_at else "overdue"


@dataclass(frozen=True)
class ClockCounts:
    """Requests by their :func:`standing`; ``not_started`` counts those that never reached the payer."""

    on_time: int = 0
    late: int = 0
    open: int = 0
    overdue: int = 0
    not_started: int = 0

    @classmethod
    def of(cls, standings: Iterable[Standing | None]) -> ClockCounts:
        tally = {"on-time": 0, "late": 0, "open": 0, "overdue": 0, None: 0}
        for value in standings:
            tally[value] += 1
        return cls(on_time=tally["on-time"], late=tally["late"], open=tally["open"], overdue=tally["overdue"],
                   not_started=tally[None])

    @property
    def total(self) -> int:
        """Requests on a clock (those that reached the payer)."""
        return self.on_time + self.late + self.open + self.overdue

    @property
    def undecided(self) -> int:
        """Still waiting for the payer: open (within the deadline) plus overdue."""
        return self.open + self.overdue

    def as_dict(self) -> dict[str, int]:
        return {"on-time": self.on_time, "late": self.late, "open": self.open, "overdue": self.overdue,
                "not-started": self.not_started}


def describe(remaining: timedelta) -> str:
    """A short human form: ``2d 3h left``, ``5h 10m left``, ``overdue 4h``."""
    seconds = int(remaining.total_seconds())
    overdue = seconds < 0
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = f"{days}d {hours}h" if days else (f"{hours}h {minutes}m" if hours else f"{minutes}m")
    return f"overdue {text}" if overdue else f"{text} left"


def format_seconds(seconds: float | None) -> str:
    """A short duration: ``250 ms``, ``4.2 s``, ``12.5 min``, ``3.0 h``, ``2.4 d``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    sign, value = ("-" if seconds < 0 else ""), abs(seconds)
    if value < 1:
        text = f"{value * 1000:.0f} ms"
    elif value < 60:
        text = f"{value:.1f} s"
    elif value < 3600:
        text = f"{value / 60:.1f} min"
    elif value < 86400:
        text = f"{value / 3600:.1f} h"
    else:
        text = f"{value / 86400:.1f} d"
    return sign + text


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """A stored time as aware UTC: SQLite hands times back naive (we store UTC), PostgreSQL in the session's zone."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

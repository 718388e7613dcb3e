"""The CMS decision clock (CMS-0057-F): 72 hours for expedited requests, 7 calendar days for standard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import overload

LIMITS = {"expedited": timedelta(hours=72), "standard": timedelta(days=7)}


def deadline(submitted_at: datetime, urgency: str) -> datetime:
    """When the payer's decision is due for a request received at ``submitted_at``."""
    return submitted_at + LIMITS.get(urgency, LIMITS["standard"])


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

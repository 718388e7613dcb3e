"""Interval operators with CQL boundary rules: closed ``None`` = unbounded (min/max), open ``None`` = unknown."""

from __future__ import annotations

from typing import Any

from .logic import compare
from .types import Interval


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _le(x: Any, y: Any, strict: bool) -> bool | None:
    c = compare(x, y)
    if c is None:
        return None
    return c < 0 if strict else c <= 0


def contains_point(iv: Interval, x: Any) -> bool | None:
    """``x in iv``."""
    if x is None:
        return None
    lo: bool | None = (True if iv.low_closed else None) if iv.low is None else _le(iv.low, x, not iv.low_closed)
    hi: bool | None = (True if iv.high_closed else None) if iv.high is None else _le(x, iv.high, not iv.high_closed)
    return _and(lo, hi)


def _starts_before_end(a: Interval, b: Interval) -> bool | None:
    if a.low is None:
        return True if a.low_closed else None
    if b.high is None:
        return True if b.high_closed else None
    return _le(a.low, b.high, not (a.low_closed and b.high_closed))


def overlaps(a: Interval, b: Interval) -> bool | None:
    """Whether the intervals share at least one point."""
    return _and(_starts_before_end(a, b), _starts_before_end(b, a))


def includes(a: Interval, b: Interval) -> bool | None:
    """Whether ``a`` includes every point of ``b``."""
    lo = True if a.low is None and a.low_closed else (
        None if a.low is None or b.low is None else _le(a.low, b.low, not a.low_closed and b.low_closed))
    hi = True if a.high is None and a.high_closed else (
        None if a.high is None or b.high is None else _le(b.high, a.high, not a.high_closed and b.high_closed))
    return _and(lo, hi)


def start(iv: Interval) -> Any:
    return iv.low


def end(iv: Interval) -> Any:
    return iv.high

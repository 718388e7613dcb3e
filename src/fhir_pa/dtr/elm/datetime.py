"""CQL Date, DateTime and Time with precision: parsing, printing, uncertain comparison and arithmetic.

CQL temporal values keep the precision they were written with (``2020-06`` is a month, not June 1st),
so comparisons that reach past the shared precision are *unknown* (``None``), never guessed.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re
from dataclasses import dataclass

#: Field names in precision order; a value's precision is how many of them are set.
FIELDS = ("year", "month", "day", "hour", "minute", "second", "millisecond")
UNIT_INDEX = {name: i for i, name in enumerate(FIELDS)}

_DT_RE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?)?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?$")
_TIME_RE = re.compile(r"^T?(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?$")


def _ms(text: str | None) -> int | None:
    if text is None:
        return None
    return int((text + "00")[:3])


def _offset(text: str | None) -> float | None:
    if text is None:
        return None
    if text == "Z":
        return 0.0
    sign = -1 if text[0] == "-" else 1
    body = text[1:].replace(":", "")
    return sign * (int(body[:2]) + (int(body[2:4]) / 60 if len(body) > 2 else 0))


@dataclass(frozen=True, slots=True)
class CqlDate:
    """A calendar date with year, month or day precision."""

    year: int
    month: int | None = None
    day: int | None = None

    @property
    def parts(self) -> tuple[int | None, ...]:
        return (self.year, self.month, self.day)

    @property
    def precision(self) -> int:
        return sum(1 for p in self.parts if p is not None)

    @staticmethod
    def parse(text: str) -> CqlDate | None:
        m = _DT_RE.match(text)
        if m is None or m.group(4) is not None or m.group(8) is not None:
            return None
        return CqlDate(int(m.group(1)), _int(m.group(2)), _int(m.group(3)))

    def __str__(self) -> str:
        out = f"{self.year:04d}"
        if self.month is not None:
            out += f"-{self.month:02d}"
            if self.day is not None:
                out += f"-{self.day:02d}"
        return out


@dataclass(frozen=True, slots=True)
class CqlDateTime:
    """A date and time with any precision down to milliseconds and an optional UTC offset in hours."""

    year: int
    month: int | None = None
    day: int | None = None
    hour: int | None = None
    minute: int | None = None
    second: int | None = None
    millisecond: int | None = None
    offset: float | None = None

    @property
    def parts(self) -> tuple[int | None, ...]:
        return (self.year, self.month, self.day, self.hour, self.minute, self.second, self.millisecond)

    @property
    def precision(self) -> int:
        return sum(1 for p in self.parts if p is not None)

    @staticmethod
    def parse(text: str, default_offset: float | None = None) -> CqlDateTime | None:
        m = _DT_RE.match(text)
        if m is None:
            return None
        off = _offset(m.group(8))
        if off is None and m.group(4) is not None:
            off = default_offset
        if m.group(4) is None:
            off = default_offset if off is None else off
        return CqlDateTime(int(m.group(1)), _int(m.group(2)), _int(m.group(3)), _int(m.group(4)), _int(m.group(5)),
                           _int(m.group(6)), _ms(m.group(7)), off)

    def date(self) -> CqlDate:
        return CqlDate(self.year, self.month, self.day)

    def utc_parts(self) -> tuple[int | None, ...]:
        """The fields shifted to UTC when the value has an hour and an offset; as written otherwise."""
        if self.hour is None or self.offset is None or self.offset == 0 or self.day is None or self.month is None:
            return self.parts
        base = _dt.datetime(self.year, self.month, self.day, self.hour, self.minute or 0, self.second or 0,
                            (self.millisecond or 0) * 1000) - _dt.timedelta(hours=self.offset)
        full = (base.year, base.month, base.day, base.hour, base.minute, base.second, base.microsecond // 1000)
        return tuple(v if p is not None else None for v, p in zip(full, self.parts, strict=True))

    def __str__(self) -> str:
        out = f"{self.year:04d}"
        parts = self.parts
        seps = ("-", "-", "T", ":", ":", ".")
        for i, value in enumerate(parts[1:], start=1):
            if value is None:
                break
            out += seps[i - 1] + (f"{value:03d}" if i == 6 else f"{value:02d}")
        if "T" in out and self.offset is not None:
            sign = "-" if self.offset < 0 else "+"
            hours = int(abs(self.offset))
            minutes = round((abs(self.offset) - hours) * 60)
            out += f"{sign}{hours:02d}:{minutes:02d}"
        return out


@dataclass(frozen=True, slots=True)
class CqlTime:
    """A time of day (no date, no offset)."""

    hour: int
    minute: int | None = None
    second: int | None = None
    millisecond: int | None = None

    @property
    def parts(self) -> tuple[int | None, ...]:
        return (self.hour, self.minute, self.second, self.millisecond)

    @staticmethod
    def parse(text: str) -> CqlTime | None:
        m = _TIME_RE.match(text)
        if m is None:
            return None
        return CqlTime(int(m.group(1)), _int(m.group(2)), _int(m.group(3)), _ms(m.group(4)))

    def __str__(self) -> str:
        out = f"{self.hour:02d}"
        for i, value in enumerate(self.parts[1:], start=1):
            if value is None:
                break
            out += ("." + f"{value:03d}") if i == 3 else f":{value:02d}"
        return out


Temporal = CqlDate | CqlDateTime | CqlTime


def _int(text: str | None) -> int | None:
    return int(text) if text is not None else None


def _aligned(a: Temporal, b: Temporal) -> tuple[tuple[int | None, ...], tuple[int | None, ...]]:
    if isinstance(a, CqlDateTime) and isinstance(b, CqlDateTime):
        if a.hour is not None and b.hour is not None:
            return a.utc_parts(), b.utc_parts()
        return a.parts, b.parts
    if isinstance(a, CqlDateTime) and isinstance(b, CqlDate):
        return a.parts[:3], b.parts
    if isinstance(a, CqlDate) and isinstance(b, CqlDateTime):
        return a.parts, b.parts[:3]
    return a.parts, b.parts


def compare(a: Temporal, b: Temporal, precision: str | None = None) -> int | None:
    """-1/0/1 when the order is certain, ``None`` when one value stops before the other differs."""
    pa, pb = _aligned(a, b)
    limit = len(pa) if precision is None else UNIT_INDEX[precision] + (0 if isinstance(a, CqlTime) else 1)
    if isinstance(a, CqlTime) and precision is not None:
        limit = UNIT_INDEX[precision] - 2
    for i in range(min(limit, len(pa), len(pb))):
        x, y = pa[i], pb[i]
        if x is None and y is None:
            return 0
        if x is None or y is None:
            return None
        if x != y:
            return -1 if x < y else 1
    return 0


def same_as(a: Temporal, b: Temporal, precision: str | None = None) -> bool | None:
    c = compare(a, b, precision)
    return None if c is None else c == 0


_UNIT_ALIASES = {
    "year": "year", "years": "year", "a": "year", "month": "month", "months": "month", "mo": "month",
    "week": "week", "weeks": "week", "wk": "week", "day": "day", "days": "day", "d": "day",
    "hour": "hour", "hours": "hour", "h": "hour", "minute": "minute", "minutes": "minute", "min": "minute",
    "second": "second", "seconds": "second", "s": "second", "millisecond": "millisecond",
    "milliseconds": "millisecond", "ms": "millisecond",
}


def temporal_unit(unit: str) -> str | None:
    """The calendar unit a quantity unit names (``'3 months'`` → month), or ``None``."""
    return _UNIT_ALIASES.get(unit)


def add(value: Temporal, amount: float, unit: str) -> Temporal:
    """``value + amount unit`` with CQL calendar rules (month ends clamp; finer units than the value truncate)."""
    cal = temporal_unit(unit)
    if cal is None:
        raise ValueError(f"unit {unit!r} is not a time unit")
    if isinstance(value, CqlTime):
        raise ValueError("time arithmetic is not supported")
    n = int(amount)
    if cal == "week":
        cal, n = "day", n * 7
    idx = UNIT_INDEX[cal]
    coarser = {1: 12, 2: 30, 3: 24, 4: 60, 5: 60, 6: 1000}  # units of FIELDS[i] per one FIELDS[i-1]
    while idx >= value.precision and idx > 0:  # quantity finer than the value: convert and truncate
        n = int(n / coarser[idx])
        idx -= 1
    parts: list[int | None] = list(value.parts) + [None] * (7 - len(value.parts))
    year = value.year
    if idx <= 1:
        months = year * 12 + (value.month or 1) - 1 + (n * 12 if idx == 0 else n)
        year, month0 = divmod(months, 12)
        parts[0] = year
        if value.month is not None:
            parts[1] = month0 + 1
            if value.day is not None:
                parts[2] = min(value.day, calendar.monthrange(year, month0 + 1)[1])
    else:
        base = _to_datetime(tuple(parts))
        moved = base + _dt.timedelta(**{FIELDS[idx] + "s": n})
        full = (moved.year, moved.month, moved.day, moved.hour, moved.minute, moved.second, moved.microsecond // 1000)
        parts = [full[i] if p is not None else None for i, p in enumerate(parts)]
    y = parts[0] if parts[0] is not None else year
    if isinstance(value, CqlDate):
        return CqlDate(y, parts[1], parts[2])
    return CqlDateTime(y, parts[1], parts[2], parts[3], parts[4], parts[5], parts[6], value.offset)


def _to_datetime(parts: tuple[int | None, ...]) -> _dt.datetime:
    """A Python datetime from CQL fields, unknown ones at their minimum (for arithmetic only)."""
    v = [p if p is not None else d for p, d in zip(parts, (1, 1, 1, 0, 0, 0, 0), strict=False)]
    v += [1, 1, 1, 0, 0, 0, 0][len(v):]
    return _dt.datetime(v[0], v[1], v[2], v[3], v[4], v[5], v[6] * 1000)


@dataclass(frozen=True, slots=True)
class Uncertainty:
    """An integer known only to lie in ``[low, high]`` (a duration between imprecise dates)."""

    low: int
    high: int


def _bounds(value: CqlDate | CqlDateTime, idx: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Earliest and latest full values (down to field ``idx``) an imprecise date/time may stand for."""
    lo, hi = [], []
    parts = value.parts
    for i in range(idx + 1):
        p = parts[i] if i < len(parts) else None
        if p is not None:
            lo.append(p)
            hi.append(p)
            continue
        lo.append((1, 1, 1, 0, 0, 0, 0)[i])
        if i == 2:
            hi.append(calendar.monthrange(hi[0], hi[1])[1])
        else:
            hi.append((0, 12, 31, 23, 59, 59, 999)[i])
    return tuple(lo), tuple(hi)


def _whole(a: tuple[int | None, ...], b: tuple[int | None, ...], cal: str) -> int:
    da, db = _to_datetime(a), _to_datetime(b)
    if cal in ("year", "month"):
        months = (db.year - da.year) * 12 + db.month - da.month
        start = CqlDateTime(*(a + (None,) * (7 - len(a))))  # type: ignore[arg-type]
        while months > 0 and _to_datetime(add(start, months, "month").parts) > db:
            months -= 1
        while months < 0 and _to_datetime(add(start, months, "month").parts) < db:
            months += 1
        return int(months / 12) if cal == "year" else months
    per = {"week": 604800, "day": 86400, "hour": 3600, "minute": 60, "second": 1, "millisecond": 0.001}[cal]
    return int((db - da).total_seconds() / per)


def difference(a: Temporal, b: Temporal, unit: str, *, whole: bool) -> int | Uncertainty | None:
    """``duration in`` (``whole``: whole calendar units elapsed) or ``difference in`` (boundaries crossed).

    When a value is less precise than the unit, the answer is an :class:`Uncertainty` range (or its single
    value when the range collapses), as the reference engine computes it.
    """
    cal = temporal_unit(unit)
    if cal is None or isinstance(a, CqlTime) or isinstance(b, CqlTime):
        return None
    idx = UNIT_INDEX["day" if cal == "week" else cal]
    pa, pb = _aligned(a, b)
    if not whole:
        pa, pb = pa[: idx + 1], pb[: idx + 1]
        if any(p is None for p in pa) or any(p is None for p in pb):
            return None
        if cal == "year":
            return int(pb[0] or 0) - int(pa[0] or 0)
        if cal == "month":
            return (int(pb[0] or 0) - int(pa[0] or 0)) * 12 + int(pb[1] or 0) - int(pa[1] or 0)
        return _whole(pa, pb, cal)
    if all(p is not None for p in pa[: idx + 1]) and all(p is not None for p in pb[: idx + 1]):
        return _whole(pa, pb, cal)
    ta = CqlDateTime(*(pa + (None,) * (7 - len(pa))))  # type: ignore[arg-type]
    tb = CqlDateTime(*(pb + (None,) * (7 - len(pb))))  # type: ignore[arg-type]
    (alo, ahi), (blo, bhi) = _bounds(ta, idx), _bounds(tb, idx)
    low, high = _whole(ahi, blo, cal), _whole(alo, bhi, cal)
    return low if low == high else Uncertainty(low, high)

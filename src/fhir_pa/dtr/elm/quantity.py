"""Quantity arithmetic and comparison with unit conversion.

The units payer logic uses every day (time, including the CQL calendar words; mass, length, volume, pressure,
concentration, percent) convert through a small exact table, so the common path is fast and matches the
reference engine digit for digit. Any other UCUM unit is converted by ``ucumvert`` (a maintained UCUM parser on
top of pint), loaded on first need. Units neither knows, or of different dimensions, are incomparable
(``None``), which is the CQL answer.
"""

from __future__ import annotations

import functools
from typing import Any

from .types import Quantity

# unit -> (dimension, factor to the dimension's base unit)
_TABLE: dict[str, tuple[str, float]] = {
    # time, base = second. UCUM: mo = mean Julian month (30.4375 d), a = 365.25 d.
    "ms": ("time", 0.001), "s": ("time", 1.0), "min": ("time", 60.0), "h": ("time", 3600.0),
    "d": ("time", 86400.0), "wk": ("time", 604800.0), "mo": ("time", 2629800.0), "a": ("time", 31557600.0),
    # mass, base = gram
    "ug": ("mass", 1e-6), "mg": ("mass", 1e-3), "g": ("mass", 1.0), "kg": ("mass", 1e3),
    "[lb_av]": ("mass", 453.59237), "[oz_av]": ("mass", 28.349523125),
    # length, base = metre
    "mm": ("length", 1e-3), "cm": ("length", 1e-2), "m": ("length", 1.0), "km": ("length", 1e3),
    "[in_i]": ("length", 0.0254), "[ft_i]": ("length", 0.3048),
    # volume, base = litre
    "mL": ("volume", 1e-3), "dL": ("volume", 0.1), "L": ("volume", 1.0), "l": ("volume", 1.0),
    # pressure, base = pascal
    "mm[Hg]": ("pressure", 133.322387415), "kPa": ("pressure", 1000.0), "Pa": ("pressure", 1.0),
    # amount-of-substance concentration, base = mol/L
    "mmol/L": ("conc", 1e-3), "mol/L": ("conc", 1.0), "umol/L": ("conc", 1e-6),
    # pure numbers
    "1": ("one", 1.0), "%": ("one", 0.01),
}
# CQL calendar duration words (CQL §5.6.3): definite-duration equivalents used for conversion.
_CALENDAR = {"millisecond": "ms", "second": "s", "minute": "min", "hour": "h", "day": "d", "week": "wk",
             "month": "mo", "year": "a"}


def canonical_unit(unit: str | None) -> str:
    u = "1" if unit in (None, "") else unit
    assert u is not None
    base = u[:-1] if u.endswith("s") and u[:-1] in _CALENDAR else u
    return _CALENDAR.get(base, u)


def convert(q: Quantity, unit: str) -> Quantity | None:
    """``q`` expressed in ``unit``, rounded to 8 decimals as the reference engine does; ``None`` if unknown."""
    if q.value is None:
        return None
    src, dst = canonical_unit(q.unit), canonical_unit(unit)
    if src == dst:
        return Quantity(q.value, unit)
    a, b = _TABLE.get(src), _TABLE.get(dst)
    if a is not None and b is not None:
        return Quantity(round(q.value * a[1] / b[1], 8), unit) if a[0] == b[0] else None
    factor = _ucum_factor(src, dst)
    return None if factor is None else Quantity(round(q.value * factor, 8), unit)


@functools.lru_cache(maxsize=1)
def _registry() -> Any:
    from ucumvert import PintUcumRegistry  # about 0.7 s to build: only when a unit is outside the table

    return PintUcumRegistry()


@functools.lru_cache(maxsize=512)
def _ucum_factor(src: str, dst: str) -> float | None:
    """How many ``dst`` one ``src`` is, by UCUM; None when either is not UCUM or the dimensions differ."""
    registry = _registry()
    try:
        return float((1 * registry.from_ucum(src)).to(registry.from_ucum(dst)).magnitude)
    except Exception:  # ucumvert/pint raise many kinds of error for units they cannot read or relate
        return None


def compare(a: Quantity, b: Quantity) -> int | None:
    """-1/0/1, or ``None`` when either value is null or the units cannot be compared."""
    if a.value is None or b.value is None:
        return None
    if canonical_unit(a.unit) == canonical_unit(b.unit):
        x, y = float(a.value), float(b.value)
    else:
        conv = convert(b, a.unit or "1")
        if conv is None or conv.value is None:
            return None
        x, y = float(a.value), float(conv.value)
    return (x > y) - (x < y)


def equal(a: Quantity, b: Quantity) -> bool | None:
    c = compare(a, b)
    return None if c is None else c == 0

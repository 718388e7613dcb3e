"""CQL equality, equivalence and ordering over every runtime value (three-valued where CQL says so)."""

from __future__ import annotations

import math
from typing import Any

from . import datetime as cdt
from . import quantity as qty
from .types import Code, Concept, FhirNode, Interval, Quantity, Tuple

_TEMPORAL = (cdt.CqlDate, cdt.CqlDateTime, cdt.CqlTime)


def equal(a: Any, b: Any) -> bool | None:
    """CQL ``=``: ``None`` when either side is null or the comparison is uncertain."""
    if a is None or b is None:
        return None
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, cdt.Uncertainty) or isinstance(b, cdt.Uncertainty):
        r = compare(a, b)
        return None if r is None else r == 0
    if isinstance(a, str) or isinstance(b, str):
        return a == b if isinstance(a, str) and isinstance(b, str) else False
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False
        unknown = False
        for x, y in zip(a, b, strict=True):
            r = equal(x, y)
            if r is False:
                return False
            unknown = unknown or r is None
        return None if unknown else True
    if isinstance(a, _TEMPORAL) and isinstance(b, _TEMPORAL):
        if type(a) is not type(b):
            return False
        return cdt.same_as(a, b)
    if isinstance(a, Quantity) and isinstance(b, Quantity):
        return qty.equal(a, b)
    if isinstance(a, Code) and isinstance(b, Code):
        return (a.code, a.system, a.version, a.display) == (b.code, b.system, b.version, b.display)
    if isinstance(a, Concept) and isinstance(b, Concept):
        return equal(list(a.codes), list(b.codes)) if a.display == b.display else False
    if isinstance(a, Interval) and isinstance(b, Interval):
        if a.low_closed != b.low_closed or a.high_closed != b.high_closed:
            return False
        lo, hi = equal(a.low, b.low), equal(a.high, b.high)
        if lo is False or hi is False:
            return False
        return None if lo is None or hi is None else True
    if isinstance(a, Tuple) and isinstance(b, Tuple):
        if a.keys() != b.keys():
            return False
        return equal(list(a.values()), list(b.values())) if a else True
    if isinstance(a, FhirNode) and isinstance(b, FhirNode):
        return a == b
    return False


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def equivalent(a: Any, b: Any) -> bool:
    """CQL ``~``: never null; null ~ null is true; strings ignore case; codes match on system + code."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()  # the reference engine ignores case only, not whitespace
    if isinstance(a, Code) and isinstance(b, Code):
        return a.code == b.code and a.system == b.system
    if isinstance(a, (Code, Concept)) and isinstance(b, (Code, Concept)):
        ca = a.codes if isinstance(a, Concept) else (a,)
        cb = b.codes if isinstance(b, Concept) else (b,)
        return any(equivalent(x, y) for x in ca for y in cb)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equivalent(x, y) for x, y in zip(a, b, strict=True))
    if (isinstance(a, float) or isinstance(b, float)) and _number(a) and _number(b):
        return math.isclose(float(a), float(b), rel_tol=0, abs_tol=1e-8)
    if isinstance(a, Tuple) and isinstance(b, Tuple):
        return a.keys() == b.keys() and all(equivalent(a[k], b[k]) for k in a)
    r = equal(a, b)
    return bool(r)


def _compare_uncertain(u: cdt.Uncertainty, n: Any) -> int | None:
    if isinstance(n, cdt.Uncertainty):
        if u.high < n.low:
            return -1
        if u.low > n.high:
            return 1
        return 0 if (u.low, u.high) == (n.low, n.high) and u.low == u.high else None
    if u.high < n:
        return -1
    if u.low > n:
        return 1
    return None


def compare(a: Any, b: Any) -> int | None:
    """Order of two comparable values: -1/0/1, ``None`` if null or uncertain."""
    if a is None or b is None:
        return None
    if isinstance(a, cdt.Uncertainty):
        return _compare_uncertain(a, b)
    if isinstance(b, cdt.Uncertainty):
        r = _compare_uncertain(b, a)
        return None if r is None else -r
    if isinstance(a, _TEMPORAL) and isinstance(b, _TEMPORAL):
        return cdt.compare(a, b)
    if isinstance(a, Quantity) and isinstance(b, Quantity):
        return qty.compare(a, b)
    if isinstance(a, (int, float, str)) and isinstance(b, type(a) if isinstance(a, str) else (int, float)):
        return (a > b) - (a < b)  # type: ignore[operator]
    raise TypeError(f"cannot compare {type(a).__name__} with {type(b).__name__}")


def distinct_key(v: Any) -> Any:
    """A hashable key under which equal values collide (for distinct/union/except)."""
    if isinstance(v, FhirNode):
        return ("F", v.type, id(v.json)) if isinstance(v.json, (dict, list)) else ("F", v.type, v.json, repr(v.ext))
    if isinstance(v, list):
        return ("L", tuple(distinct_key(x) for x in v))
    if isinstance(v, Tuple):
        return ("T", tuple((k, distinct_key(x)) for k, x in v.items()))
    if isinstance(v, bool):
        return ("B", v)
    if isinstance(v, (int, float)):
        return ("N", float(v))
    if isinstance(v, Concept):
        return ("C", v.codes, v.display)
    if isinstance(v, Interval):
        return ("I", distinct_key(v.low), distinct_key(v.high), v.low_closed, v.high_closed)
    return (type(v).__name__, v)


def distinct(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for v in values:
        k = distinct_key(v)
        if k not in seen:
            seen.add(k)
            out.append(v)
    return out

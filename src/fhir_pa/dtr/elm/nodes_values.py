"""Node compilers: arithmetic, strings, conversions, dates and times, intervals, terminology."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import datetime as cdt
from . import interval as ivl
from . import quantity as qty
from .errors import ElmError
from .logic import compare, equal
from .runtime import (
    HANDLERS,
    Fn,
    Frame,
    Handler,
    handles,
    in_codes,
)
from .types import Concept, Interval, Quantity, ValueSet

if TYPE_CHECKING:
    from .compile import Compiler


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _arith(op: str, a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if _number(a) and _number(b):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return None if b == 0 else float(a) / float(b)
    if isinstance(a, (cdt.CqlDate, cdt.CqlDateTime)) and isinstance(b, Quantity):
        if b.value is None or b.unit is None:
            return None
        return cdt.add(a, b.value if op == "+" else -b.value, b.unit)
    if isinstance(a, Quantity) and isinstance(b, Quantity) and op in "+-":
        if a.value is None or b.value is None:
            return None
        conv = qty.convert(b, a.unit or "1")
        if conv is None or conv.value is None:
            return None
        return Quantity(a.value + conv.value if op == "+" else a.value - conv.value, a.unit)
    if isinstance(a, str) and isinstance(b, str) and op == "+":
        return a + b
    raise TypeError(f"cannot apply {op} to {type(a).__name__} and {type(b).__name__}")


# -- arithmetic and strings


def _binary(op: str) -> Handler:
    def handler(c: Compiler, n: dict[str, Any]) -> Fn:
        a, b = c.two(n)
        return lambda f: _arith(op, a(f), b(f))
    return handler


HANDLERS["Add"] = _binary("+")
HANDLERS["Subtract"] = _binary("-")
HANDLERS["Multiply"] = _binary("*")
HANDLERS["Divide"] = _binary("/")


@handles("Negate")
def _negate(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)

    def neg(f: Frame) -> Any:
        v = a(f)
        if isinstance(v, Quantity):
            return Quantity(None if v.value is None else -v.value, v.unit)
        return None if v is None else -v
    return neg


@handles("Concatenate")
def _concatenate(c: Compiler, n: dict[str, Any]) -> Fn:
    ops = c.operands(n)

    def concat(f: Frame) -> Any:
        parts = [o(f) for o in ops]
        return None if any(p is None for p in parts) else "".join(parts)
    return concat


@handles("Combine")
def _combine(c: Compiler, n: dict[str, Any]) -> Fn:
    src, sep = c.expr(n["source"]), c.expr(n.get("separator"))

    def combine(f: Frame) -> Any:
        values = src(f)
        if values is None:
            return None
        kept = [v for v in values if v is not None]
        s = sep(f)
        return (s if s is not None else "").join(kept) if kept else None
    return combine


@handles("Split")
def _split(c: Compiler, n: dict[str, Any]) -> Fn:
    src, sep = c.expr(n["stringToSplit"]), c.expr(n.get("separator"))

    def split(f: Frame) -> Any:
        s, d = src(f), sep(f)
        if s is None:
            return None
        return [s] if d is None else s.split(d)
    return split


@handles("Substring")
def _substring(c: Compiler, n: dict[str, Any]) -> Fn:
    s, start, length = c.expr(n["stringToSub"]), c.expr(n["startIndex"]), n.get("length")
    ln = c.expr(length) if length is not None else None

    def substring(f: Frame) -> Any:
        text, i = s(f), start(f)
        if text is None or i is None or i < 0 or i >= len(text):
            return None
        if ln is not None:
            k = ln(f)
            if k is not None:
                return text[i:i + max(k, 0)]
        return text[i:]
    return substring


def _string2(fn: Callable[[str, str], Any]) -> Handler:
    def handler(c: Compiler, n: dict[str, Any]) -> Fn:
        a, b = c.two(n)
        return lambda f: (lambda x, y: None if x is None or y is None else fn(x, y))(a(f), b(f))
    return handler


HANDLERS["EndsWith"] = _string2(lambda a, b: a.endswith(b))
HANDLERS["StartsWith"] = _string2(lambda a, b: a.startswith(b))


@handles("Length")
def _length(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)
    return lambda f: (lambda v: None if v is None else len(v))(a(f))


@handles("Upper", "Lower")
def _case_fn(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)
    upper = n["type"] == "Upper"
    return lambda f: (lambda v: None if v is None else v.upper() if upper else v.lower())(a(f))


@handles("Message")
def _message(c: Compiler, n: dict[str, Any]) -> Fn:
    src, cond = c.expr(n["source"]), c.expr(n.get("condition"))
    code, sev, msg = c.expr(n.get("code")), c.expr(n.get("severity")), c.expr(n.get("message"))
    loc = n.get("locator")

    def message(f: Frame) -> Any:
        value = src(f)
        if cond(f) is True:
            severity = str(sev(f) or "Message")
            text = f"{code(f) or ''}: {msg(f) or ''}".strip(": ")
            if severity.lower() == "error":
                raise ElmError(f"Message: {text}", locator=loc)
            f.run.messages.append((severity, text))
        return value
    return message


# -- conversions


@handles("ToString")
def _to_string(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)

    def to_string(f: Frame) -> Any:
        v = a(f)
        if v is None:
            return None
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, Quantity):
            return f"{_num_str(v.value)} '{v.unit}'"
        if isinstance(v, float):
            return _num_str(v)
        return str(v)
    return to_string


def _num_str(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


@handles("ToInteger")
def _to_integer(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)

    def to_int(f: Frame) -> Any:
        v = a(f)
        if v is None:
            return None
        if isinstance(v, bool):
            return int(v)
        try:
            return int(str(v))
        except ValueError:
            return None
    return to_int


@handles("ToDecimal")
def _to_decimal(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)

    def to_dec(f: Frame) -> Any:
        v = a(f)
        if v is None:
            return None
        try:
            return float(v)
        except ValueError:
            return None
    return to_dec


@handles("ToDateTime")
def _to_datetime(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)

    def to_dt(f: Frame) -> Any:
        v = a(f)
        if v is None or isinstance(v, cdt.CqlDateTime):
            return v
        if isinstance(v, cdt.CqlDate):
            return cdt.CqlDateTime(v.year, v.month, v.day, offset=f.run.now.offset)
        return cdt.CqlDateTime.parse(str(v), f.run.now.offset)
    return to_dt


@handles("ToDate", "DateFrom")
def _to_date(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)

    def to_date(f: Frame) -> Any:
        v = a(f)
        if v is None or isinstance(v, cdt.CqlDate):
            return v
        if isinstance(v, cdt.CqlDateTime):
            return v.date()
        parsed = cdt.CqlDateTime.parse(str(v))
        return parsed.date() if parsed else None
    return to_date


@handles("ToList")
def _to_list(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)
    return lambda f: (lambda v: [] if v is None else [v])(a(f))


@handles("ToConcept")
def _to_concept(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)

    def to_concept(f: Frame) -> Any:
        v = a(f)
        if v is None or isinstance(v, Concept):
            return v
        codes = tuple(v) if isinstance(v, list) else (v,)
        return Concept(codes, None, frozenset({"display"}))
    return to_concept


@handles("ConvertQuantity")
def _convert_quantity(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)
    return lambda f: (lambda q, u: None if q is None or u is None else qty.convert(q, u))(a(f), b(f))


# -- clinical and temporal


@handles("Now")
def _now(c: Compiler, n: dict[str, Any]) -> Fn:
    return lambda f: f.run.now


@handles("Today")
def _today(c: Compiler, n: dict[str, Any]) -> Fn:
    return lambda f: f.run.now.date()


@handles("Date", "DateTime")
def _date_ctor(c: Compiler, n: dict[str, Any]) -> Fn:
    names = ["year", "month", "day"] + (["hour", "minute", "second", "millisecond"] if n["type"] == "DateTime" else [])
    parts = [c.expr(n[k]) if n.get(k) else None for k in names]
    tz = c.expr(n["timezoneOffset"]) if n.get("timezoneOffset") else None
    is_dt = n["type"] == "DateTime"

    def ctor(f: Frame) -> Any:
        vals = [p(f) if p else None for p in parts] + [None] * (7 - len(parts))
        year = vals[0]
        if year is None:
            return None
        if is_dt:
            off = tz(f) if tz else f.run.now.offset
            return cdt.CqlDateTime(year, vals[1], vals[2], vals[3], vals[4], vals[5], vals[6], off)
        return cdt.CqlDate(year, vals[1], vals[2])
    return ctor


@handles("DurationBetween", "DifferenceBetween")
def _between(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)
    unit = n.get("precision", "day").lower()
    whole = n["type"] == "DurationBetween"
    return lambda f: (lambda x, y: None if x is None or y is None else cdt.difference(x, y, unit, whole=whole))(
        a(f), b(f))


@handles("CalculateAge", "CalculateAgeAt")
def _age(c: Compiler, n: dict[str, Any]) -> Fn:
    ops = c.operands(n)
    unit = n.get("precision", "year").lower()

    def age(f: Frame) -> Any:
        birth = ops[0](f)
        at = ops[1](f) if len(ops) > 1 else (f.run.now.date() if isinstance(birth, cdt.CqlDate) else f.run.now)
        if birth is None or at is None:
            return None
        return cdt.difference(birth, at, unit, whole=True)
    return age


# -- intervals


@handles("Interval")
def _interval(c: Compiler, n: dict[str, Any]) -> Fn:
    low, high = c.expr(n.get("low")), c.expr(n.get("high"))
    lc, hc = n.get("lowClosed", True), n.get("highClosed", True)
    lce = c.expr(n["lowClosedExpression"]) if n.get("lowClosedExpression") else None
    hce = c.expr(n["highClosedExpression"]) if n.get("highClosedExpression") else None
    return lambda f: Interval(low(f), high(f), lce(f) if lce else lc, hce(f) if hce else hc)


@handles("Start")
def _start(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)
    return lambda f: (lambda v: None if v is None else ivl.start(v))(a(f))


@handles("End")
def _end(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)
    return lambda f: (lambda v: None if v is None else ivl.end(v))(a(f))


@handles("Overlaps")
def _overlaps(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)
    return lambda f: (lambda x, y: None if x is None or y is None else ivl.overlaps(x, y))(a(f), b(f))


@handles("In")
def _in(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)

    def in_(f: Frame) -> Any:
        item, container = a(f), b(f)
        if container is None:
            return False
        if isinstance(container, list):
            return any(equal(x, item) is True or (x is None and item is None) for x in container)
        if isinstance(container, ValueSet):
            return in_codes(item, container)
        if item is None:
            return None
        return ivl.contains_point(container, item)
    return in_


@handles("Contains")
def _contains(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)

    def contains(f: Frame) -> Any:
        container, item = a(f), b(f)
        if container is None:
            return False
        if isinstance(container, list):
            return any(equal(x, item) is True or (x is None and item is None) for x in container)
        if item is None:
            return None
        return ivl.contains_point(container, item)
    return contains


@handles("Includes", "IncludedIn")
def _includes(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)
    flip = n["type"] == "IncludedIn"

    def includes(f: Frame) -> Any:
        x, y = a(f), b(f)
        if flip:
            x, y = y, x
        if x is None or y is None:
            return None
        if isinstance(x, list):
            ys = y if isinstance(y, list) else [y]
            return all(any(equal(e, i) is True for e in x) for i in ys)
        if isinstance(y, Interval):
            return ivl.includes(x, y)
        return ivl.contains_point(x, y)
    return includes


# -- terminology


@handles("InValueSet")
def _in_valueset(c: Compiler, n: dict[str, Any]) -> Fn:
    code = c.expr(n["code"])
    vs = c.expr(n["valueset"]) if n.get("valueset") else c.expr(n.get("valuesetExpression"))

    def in_vs(f: Frame) -> Any:
        v = code(f)
        if v is None:
            return False
        return bool(in_codes(v, vs(f)))
    return in_vs


@handles("AnyInValueSet")
def _any_in_valueset(c: Compiler, n: dict[str, Any]) -> Fn:
    codes = c.expr(n["codes"])
    vs = c.expr(n["valueset"])
    return lambda f: bool(in_codes(codes(f) or [], vs(f)))


# -- more arithmetic, strings, lists and dates (beyond what the CDS-Library ELM uses today)


def _unary_num(fn: Callable[[Any], Any]) -> Handler:
    def handler(c: Compiler, n: dict[str, Any]) -> Fn:
        a = c.one(n)
        return lambda f: (lambda v: None if v is None else fn(v))(a(f))
    return handler


def _abs(v: Any) -> Any:
    if isinstance(v, Quantity):
        return Quantity(None if v.value is None else abs(v.value), v.unit)
    return abs(v)


HANDLERS["Abs"] = _unary_num(_abs)
HANDLERS["Floor"] = _unary_num(lambda v: math.floor(v))
HANDLERS["Ceiling"] = _unary_num(lambda v: math.ceil(v))
HANDLERS["Truncate"] = _unary_num(lambda v: int(v))
HANDLERS["ToBoolean"] = _unary_num(
    lambda v: v if isinstance(v, bool) else {"true": True, "t": True, "yes": True, "y": True, "1": True,
                                             "false": False, "f": False, "no": False, "n": False,
                                             "0": False}.get(str(v).lower()))
HANDLERS["ToTime"] = _unary_num(lambda v: v if isinstance(v, cdt.CqlTime) else cdt.CqlTime.parse(str(v)))


@handles("Round")
def _round(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.expr(n["operand"])
    prec = c.expr(n.get("precision"))

    def round_(f: Frame) -> Any:
        v, p = a(f), prec(f)
        if v is None:
            return None
        scale = 10 ** (p or 0)
        return math.floor(v * scale + 0.5) / scale  # half rounds up, as the reference engine does
    return round_


def _num2(fn: Callable[[Any, Any], Any]) -> Handler:
    def handler(c: Compiler, n: dict[str, Any]) -> Fn:
        a, b = c.two(n)
        return lambda f: (lambda x, y: None if x is None or y is None else fn(x, y))(a(f), b(f))
    return handler


HANDLERS["Modulo"] = _num2(lambda x, y: None if y == 0 else math.fmod(x, y) if isinstance(x, float) or
                            isinstance(y, float) else int(math.fmod(x, y)))
HANDLERS["TruncatedDivide"] = _num2(lambda x, y: None if y == 0 else int(x / y))
HANDLERS["Power"] = _num2(lambda x, y: x ** y)
HANDLERS["Matches"] = _num2(lambda s, p: re.fullmatch(p, s) is not None)


def _position(last: bool) -> Handler:
    def handler(c: Compiler, n: dict[str, Any]) -> Fn:
        pat, text = c.expr(n["pattern"]), c.expr(n["string"])

        def pos(f: Frame) -> Any:
            p, s = pat(f), text(f)
            return None if p is None or s is None else (s.rfind(p) if last else s.find(p))
        return pos
    return handler


HANDLERS["PositionOf"] = _position(False)
HANDLERS["LastPositionOf"] = _position(True)


@handles("ReplaceMatches")
def _replace_matches(c: Compiler, n: dict[str, Any]) -> Fn:
    ops = c.operands(n)

    def replace(f: Frame) -> Any:
        s, p, r = (o(f) for o in ops)
        if s is None or p is None or r is None:
            return None
        return re.sub(p, re.sub(r"\$(\d)", r"\\\1", r), s)
    return replace


@handles("IndexOf")
def _index_of(c: Compiler, n: dict[str, Any]) -> Fn:
    src, elem = c.expr(n["source"]), c.expr(n["element"])

    def index_of(f: Frame) -> Any:
        values, item = src(f), elem(f)
        if values is None or item is None:
            return None
        return next((i for i, v in enumerate(values) if equal(v, item) is True), -1)
    return index_of


@handles("Slice")
def _slice(c: Compiler, n: dict[str, Any]) -> Fn:
    src, start, end = c.expr(n["source"]), c.expr(n.get("startIndex")), c.expr(n.get("endIndex"))

    def slice_(f: Frame) -> Any:
        values = src(f)
        if values is None:
            return None
        i, j = start(f), end(f)
        return values[(i or 0):j]
    return slice_


@handles("Avg")
def _avg(c: Compiler, n: dict[str, Any]) -> Fn:
    src = c.expr(n["source"])

    def avg(f: Frame) -> Any:
        values = [v for v in (src(f) or []) if v is not None]
        return sum(values) / len(values) if values else None
    return avg


def _same_or(want: int) -> Handler:
    def handler(c: Compiler, n: dict[str, Any]) -> Fn:
        a, b = c.two(n)
        precision = n.get("precision", "").lower() or None

        def test(f: Frame) -> Any:
            x, y = a(f), b(f)
            if x is None or y is None:
                return None
            r = cdt.compare(x, y, precision) if precision else compare(x, y)
            return None if r is None else r in (0, want)
        return test
    return handler


HANDLERS["SameOrBefore"] = _same_or(-1)
HANDLERS["SameOrAfter"] = _same_or(1)


@handles("DateTimeComponentFrom")
def _component(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)
    field = n.get("precision", "Year").lower()
    return lambda f: (lambda v: None if v is None else getattr(v, field, None))(a(f))

"""Node compilers: lists, aggregates, tuples and instances, queries, Retrieve."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import datetime as cdt
from . import fhir
from . import interval as ivl
from .errors import ElmError
from .logic import compare, distinct, equal
from .runtime import (
    HANDLERS,
    Fn,
    Frame,
    Handler,
    get_property,
    handles,
    in_codes,
    type_name,
)
from .types import Code, Concept, FhirNode, Interval, Quantity, Tuple

if TYPE_CHECKING:
    from .compile import Compiler


def _js_sort(values: list[Any], cmp: Callable[[Any, Any], int]) -> list[Any]:
    """The reference engine's merge sort (stable for ``cmp <= 0``; ties otherwise take the right element)."""
    if len(values) <= 1:
        return values
    mid = len(values) // 2
    left, right = _js_sort(values[:mid], cmp), _js_sort(values[mid:], cmp)
    out: list[Any] = []
    i = j = 0
    while i < len(left) and j < len(right):
        if cmp(left[i], right[j]) <= 0:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    return out + left[i:] + right[j:]


def _sort_cmp(a: Any, b: Any, low: int) -> int:
    high = -low
    if a is b or (a is None and b is None):
        return 0
    if a is None or b is None:
        return low if a is None else high
    if isinstance(a, FhirNode) or isinstance(b, FhirNode):
        return high  # JavaScript `<` between two wrapper objects is false
    c = compare(a, b)
    if c is None:  # uncertain (mixed precision): the reference engine's text order, e.g. "2020-06" < "2020-06-15"
        return low if str(a) < str(b) else high
    return low if c < 0 else high


def _singleton(values: Any, where: str | None) -> Any:
    if values is None:
        return None
    if not isinstance(values, list):
        return values
    if len(values) > 1:
        raise ElmError("singleton from: the list has more than one element", locator=where)
    return values[0] if values else None


# -- lists


@handles("List")
def _list(c: Compiler, n: dict[str, Any]) -> Fn:
    elems = [c.expr(e) for e in n.get("element", [])]
    return lambda f: [e(f) for e in elems]


@handles("Exists")
def _exists(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)

    def exists(f: Frame) -> Any:
        v = a(f)
        if not v:
            return False
        return any(x is not None for x in v) if isinstance(v, list) else True
    return exists


@handles("SingletonFrom")
def _singleton_from(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)
    loc = n.get("locator") or n.get("localId")
    return lambda f: _singleton(a(f), loc)


@handles("First", "Last")
def _first_last(c: Compiler, n: dict[str, Any]) -> Fn:
    src = c.expr(n["source"])
    idx = 0 if n["type"] == "First" else -1
    return lambda f: (lambda v: v[idx] if v else None)(src(f))


@handles("Indexer")
def _indexer(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)

    def index(f: Frame) -> Any:
        seq, i = a(f), b(f)
        if seq is None or i is None or i < 0 or i >= len(seq):
            return None
        return seq[i]
    return index


@handles("Flatten")
def _flatten(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)

    def flatten(f: Frame) -> Any:
        v = a(f)
        if v is None:
            return None
        out: list[Any] = []
        for x in v:
            if isinstance(x, list):
                out.extend(x)
            else:
                out.append(x)
        return out
    return flatten


@handles("Distinct")
def _distinct(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)
    return lambda f: (lambda v: None if v is None else distinct(v))(a(f))


@handles("Union")
def _union(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)

    def union(f: Frame) -> Any:
        x, y = a(f), b(f)
        if x is None or y is None:  # the reference engine returns the other list untouched
            other = x if y is None else y
            return other if isinstance(other, list) else ([] if x is None and y is None else None)
        return distinct([*x, *y])
    return union


def _contains_item(values: list[Any], item: Any) -> bool:
    return any(equal(v, item) is True or (v is None and item is None) for v in values)


@handles("Except")
def _except(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)

    def except_(f: Frame) -> Any:
        x, y = a(f), b(f)
        if x is None:
            return None
        if y is None:
            return x
        return [v for v in distinct(list(x)) if not _contains_item(y, v)]
    return except_


@handles("Intersect")
def _intersect(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)

    def intersect(f: Frame) -> Any:
        x, y = a(f), b(f)
        if x is None or y is None:
            return None
        return [v for v in distinct(list(x)) if _contains_item(y, v)]
    return intersect


def _aggregate(fn: Callable[[list[Any]], Any]) -> Handler:
    def handler(c: Compiler, n: dict[str, Any]) -> Fn:
        src = c.expr(n["source"])

        def agg(f: Frame) -> Any:
            v = src(f)
            if v is None:
                return None
            return fn([x for x in v if x is not None])
        return agg
    return handler


def _extreme(values: list[Any], want: int) -> Any:
    best = None
    for v in values:
        if best is None:
            best = v
            continue
        r = compare(v, best)
        if r is not None and r == want:
            best = v
    return best


HANDLERS["Max"] = _aggregate(lambda v: _extreme(v, 1))
HANDLERS["Min"] = _aggregate(lambda v: _extreme(v, -1))
HANDLERS["Sum"] = _aggregate(lambda v: sum(v) if v else None)
HANDLERS["AllTrue"] = _aggregate(lambda v: all(x is True for x in v))
HANDLERS["AnyTrue"] = _aggregate(lambda v: any(x is True for x in v))


@handles("Count")
def _count(c: Compiler, n: dict[str, Any]) -> Fn:
    src = c.expr(n["source"])
    return lambda f: (lambda v: 0 if v is None else sum(1 for x in v if x is not None))(src(f))


# -- structures


@handles("Property")
def _property(c: Compiler, n: dict[str, Any]) -> Fn:
    path = n["path"]
    scope = n.get("scope")
    if scope is not None:
        return lambda f: get_property(f.vars.get(scope), path)
    src = c.expr(n.get("source"))
    return lambda f: get_property(src(f), path)


@handles("Tuple")
def _tuple(c: Compiler, n: dict[str, Any]) -> Fn:
    elems = [(e["name"], c.expr(e["value"])) for e in n.get("element", [])]
    return lambda f: Tuple((k, v(f)) for k, v in elems)


@handles("Instance")
def _instance(c: Compiler, n: dict[str, Any]) -> Fn:
    ns, cls = type_name(n["classType"])
    elems = [(e["name"], c.expr(e["value"])) for e in n.get("element", [])]
    given = {k for k, _ in elems}
    if ns == "system" and cls == "Code":
        omitted = frozenset(k for k in ("code", "system", "version", "display") if k not in given)

        def code(f: Frame) -> Any:
            v = {k: e(f) for k, e in elems}
            return Code(v.get("code"), v.get("system"), v.get("version"), v.get("display"), omitted)
        return code
    if ns == "system" and cls == "Concept":
        def concept(f: Frame) -> Any:
            v = {k: e(f) for k, e in elems}
            return Concept(tuple(v.get("codes") or ()), v.get("display"),
                           frozenset() if "display" in given else frozenset({"display"}))
        return concept
    if ns == "system" and cls == "Quantity":
        def quantity(f: Frame) -> Any:
            v = {k: e(f) for k, e in elems}
            return Quantity(v.get("value"), v.get("unit", "1"))
        return quantity
    if ns == "system" and cls == "Tuple":
        return lambda f: Tuple((k, e(f)) for k, e in elems)

    def fhir_instance(f: Frame) -> Any:
        body = {k: _to_json(e(f)) for k, e in elems}
        return FhirNode(cls, cls, {k: v for k, v in body.items() if v is not None})
    return fhir_instance


def _to_json(v: Any) -> Any:
    if isinstance(v, FhirNode):
        return v.json
    if isinstance(v, list):
        return [_to_json(x) for x in v]
    if isinstance(v, (cdt.CqlDate, cdt.CqlDateTime, cdt.CqlTime)):
        return str(v)
    return v


# -- queries


@handles("Query")
def _query(c: Compiler, n: dict[str, Any]) -> Fn:
    sources = [(s["alias"], c.expr(s["expression"])) for s in n["source"]]
    lets = [(lt["identifier"], c.expr(lt["expression"])) for lt in n.get("let") or []]
    rels = [(r["alias"], c.expr(r["expression"]), c.expr(r.get("suchThat")), r.get("type") == "Without")
            for r in n.get("relationship") or []]
    where = c.expr(n["where"]) if n.get("where") else None
    ret_node = n.get("return")
    ret = c.expr(ret_node["expression"]) if ret_node else None
    agg_node = n.get("aggregate")
    agg = None
    if agg_node:
        agg = (agg_node["identifier"], c.expr(agg_node["expression"]),
               c.expr(agg_node["starting"]) if agg_node.get("starting") else None)
    is_distinct = True
    if agg_node and agg_node.get("distinct") is not None:
        is_distinct = bool(agg_node["distinct"])
    elif ret_node and ret_node.get("distinct") is not None:
        is_distinct = bool(ret_node["distinct"])
    elif agg_node:
        is_distinct = False
    sort_items: list[tuple[Fn | None, int]] = []
    for item in (n.get("sort") or {}).get("by", []):
        low = -1 if item.get("direction", "asc") in ("asc", "ascending") else 1
        if item.get("type") == "ByExpression":
            sort_items.append((c.expr(item["expression"]), low))
        elif item.get("type") == "ByColumn":
            sort_items.append((HANDLERS["IdentifierRef"](c, {"name": item["path"]}), low))
        else:
            sort_items.append((None, low))
    aliases = [a for a, _ in sources]
    single = len(sources) == 1

    def query(f: Frame) -> Any:
        results = [s(f) for _, s in sources]
        if all(r is None for r in results):
            return None
        is_list = any(isinstance(r, list) for r in results)
        lists = [[] if r is None else r if isinstance(r, list) else [r] for r in results]
        rows = lists[0] if single else list(itertools.product(*lists))
        out: list[Any] = []
        for row in rows:
            scope = dict(f.vars)
            if single:
                scope[aliases[0]] = row
            else:
                scope.update(zip(aliases, row, strict=True))
            rf = Frame(f.run, f.lib, scope)
            for ident, lf in lets:
                scope[ident] = lf(rf)
            ok = True
            for alias, rel_src, such, without in rels:
                found = False
                for cand in (rel_src(rf) or []):
                    scope[alias] = cand
                    if such(rf) is True:
                        found = True
                        break
                scope.pop(alias, None)
                if found == without:
                    ok = False
                    break
            if not ok or (where is not None and where(rf) is not True):
                continue
            if ret is not None:
                out.append(ret(rf))
            elif single and agg is None:
                out.append(row)
            else:
                out.append(Tuple((a, scope[a]) for a in aliases))
        if is_distinct:
            out = distinct(out)
        if agg is not None:
            ident, step, start = agg
            acc = start(f) if start else None
            for v in out:
                af = f.child(**v) if isinstance(v, Tuple) else f.child(**{aliases[0]: v})
                af.vars[ident] = acc
                acc = step(af)
            return acc
        if sort_items:
            out = _sort(f, out, sort_items)
        if is_list:
            return out
        return out[0] if out else None
    return query


def _sort(f: Frame, values: list[Any], items: Sequence[tuple[Fn | None, int]]) -> list[Any]:
    keys: dict[int, list[Any]] = {}
    for i, v in enumerate(values):
        rf = f.child(**{"$row": v})
        if isinstance(v, Tuple):
            rf.vars.update(v)
        keys[i] = [fn(rf) if fn is not None else v for fn, _ in items]
    indexed = list(range(len(values)))

    def cmp(i: int, j: int) -> int:
        for k, (_, low) in enumerate(items):
            r = _sort_cmp(keys[i][k], keys[j][k], low)
            if r != 0:
                return r
        return 0
    return [values[i] for i in _js_sort(indexed, cmp)]


# -- retrieve


@handles("Retrieve")
def _retrieve(c: Compiler, n: dict[str, Any]) -> Fn:
    _, rtype = type_name(n["dataType"])
    codes = c.expr(n["codes"]) if n.get("codes") else None
    code_prop = n.get("codeProperty") or "code"
    date_prop = n.get("dateProperty")
    dates = c.expr(n["dateRange"]) if n.get("dateRange") else None

    def retrieve(f: Frame) -> Any:
        records = f.run.data.records(rtype)
        if codes is not None:
            target = codes(f)
            if target is None:
                return []
            records = [r for r in records if in_codes(get_property(r, code_prop), target)]
        if dates is not None and date_prop:
            window = dates(f)
            if isinstance(window, Interval):
                kept = []
                for r in records:
                    v = get_property(r, date_prop)
                    v = fhir.primitive_value(v) if isinstance(v, FhirNode) and v.is_primitive else v
                    if isinstance(v, FhirNode) and v.type == "Period":
                        v = Interval(get_property(v, "start.value"), get_property(v, "end.value"))
                    hit = ivl.overlaps(v, window) if isinstance(v, Interval) else ivl.contains_point(window, v)
                    if hit:
                        kept.append(r)
                records = kept
        return list(records)
    return retrieve



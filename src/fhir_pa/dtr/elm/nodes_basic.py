"""Node compilers: literals, references, functions, type tests, logic, nulls, comparison, conditionals."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import datetime as cdt
from .errors import ElmError
from .logic import compare, equal, equivalent
from .runtime import (
    HANDLERS,
    Fn,
    Frame,
    FunctionDef,
    Handler,
    as_fhir_primitive,
    get_property,
    handles,
    matches,
    spec_of,
    type_name,
)
from .types import Code, Concept, FhirNode, Interval, Quantity, Tuple

if TYPE_CHECKING:
    from .compile import Compiler


def _and3(a: Any, b: Any) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _or3(a: Any, b: Any) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def _not3(a: Any) -> bool | None:
    return None if a is None else not a


# -- literals and references


@handles("Null")
def _null(c: Compiler, n: dict[str, Any]) -> Fn:
    return lambda f: None


@handles("Literal")
def _literal(c: Compiler, n: dict[str, Any]) -> Fn:
    _, t = type_name(n.get("valueType", ""))
    raw = n.get("value")
    value: Any
    if raw is None:
        value = None
    elif t == "Integer" or t == "Long":
        value = int(raw)
    elif t == "Decimal":
        value = float(raw)
    elif t == "Boolean":
        value = str(raw).lower() == "true"
    elif t == "Date":
        value = cdt.CqlDate.parse(str(raw).lstrip("@"))
    elif t == "DateTime":
        value = cdt.CqlDateTime.parse(str(raw).lstrip("@"))
    elif t == "Time":
        value = cdt.CqlTime.parse(str(raw).lstrip("@"))
    else:
        value = str(raw)
    return lambda f: value


@handles("Quantity")
def _quantity(c: Compiler, n: dict[str, Any]) -> Fn:
    raw = n.get("value")
    value = Quantity(raw if raw is None or isinstance(raw, (int, float)) else float(raw), n.get("unit", "1"))
    return lambda f: value


@handles("ExpressionRef")
def _expression_ref(c: Compiler, n: dict[str, Any]) -> Fn:
    lib = c.lib_for(n.get("libraryName"))
    name = n["name"]
    key = (lib.key, name)

    def ref(f: Frame) -> Any:
        memo = f.run.memo
        if key in memo:
            return memo[key]
        return f.run.define(lib, name)
    return ref


@handles("ParameterRef")
def _parameter_ref(c: Compiler, n: dict[str, Any]) -> Fn:
    lib = c.lib_for(n.get("libraryName"))
    name = n["name"]
    return lambda f: f.run.parameter(lib, name)


@handles("OperandRef", "AliasRef", "QueryLetRef")
def _name_ref(c: Compiler, n: dict[str, Any]) -> Fn:
    name = n["name"]
    return lambda f: f.vars.get(name)


@handles("IdentifierRef")
def _identifier_ref(c: Compiler, n: dict[str, Any]) -> Fn:
    name = n["name"]

    def ident(f: Frame) -> Any:
        if name in f.vars:
            return f.vars[name]
        return get_property(f.vars.get("$row"), name)
    return ident


@handles("CodeRef")
def _code_ref(c: Compiler, n: dict[str, Any]) -> Fn:
    code = c.code_ref(n)
    return lambda f: code


@handles("ConceptRef")
def _concept_ref(c: Compiler, n: dict[str, Any]) -> Fn:
    concept = c.lib_for(n.get("libraryName")).concepts[n["name"]]
    return lambda f: concept


@handles("CodeSystemRef")
def _codesystem_ref(c: Compiler, n: dict[str, Any]) -> Fn:
    url, version = c.lib_for(n.get("libraryName")).codesystems[n["name"]]
    value = Tuple(id=url, version=version)
    return lambda f: value


@handles("ValueSetRef")
def _valueset_ref(c: Compiler, n: dict[str, Any]) -> Fn:
    vs_id, version = c.lib_for(n.get("libraryName")).valuesets[n["name"]]
    return lambda f: f.run.valueset(vs_id, version)


@handles("Code")
def _code_literal(c: Compiler, n: dict[str, Any]) -> Fn:
    system = None
    if n.get("system"):
        system = c.lib_for(n["system"].get("libraryName")).codesystems.get(n["system"]["name"], (None, None))[0]
    omitted = frozenset(k for k in ("version", "display") if k not in n)
    code = Code(n.get("code"), system, n.get("version"), n.get("display"), omitted)
    return lambda f: code


@handles("Concept")
def _concept_literal(c: Compiler, n: dict[str, Any]) -> Fn:
    parts = [c.expr(x) for x in n.get("code", [])]
    display = n.get("display")
    return lambda f: Concept(tuple(p(f) for p in parts), display)


# -- functions


@handles("FunctionRef")
def _function_ref(c: Compiler, n: dict[str, Any]) -> Fn:
    lib = c.lib_for(n.get("libraryName"))
    name = n["name"]
    args = c.operands(n)
    arity = len(args)
    loc = n.get("locator") or n.get("localId")
    chosen: dict[tuple[Any, ...], FunctionDef] = {}
    lib_name = c.out.name

    def pick(values: list[Any]) -> FunctionDef:
        key = tuple(v.type if isinstance(v, FhirNode) else type(v) for v in values)
        hit = chosen.get(key)
        if hit is not None:
            return hit
        cands = [d for d in lib.functions.get(name, []) if len(d.params) == arity]
        if len(cands) > 1:
            cands = [d for d in cands
                     if all(v is None or matches(v, spec) for v, (_, spec) in zip(values, d.params, strict=True))]
        if not cands:
            raise ElmError(f"no overload of {name} matches the argument types", library=lib_name, locator=loc)
        chosen[key] = cands[-1]
        return cands[-1]

    def call(f: Frame) -> Any:
        values = [a(f) for a in args]
        d = pick(values)
        for i, v in enumerate(values):
            if isinstance(v, (str, int, float)):
                values[i] = as_fhir_primitive(v, d.params[i][1])
        if d.body is None:
            raise ElmError(f"function {name} is external; no implementation", library=lib_name, locator=loc)
        return d.body(Frame(f.run, d.lib, {p: v for (p, _), v in zip(d.params, values, strict=True)}))
    return call


# -- types


@handles("As")
def _as(c: Compiler, n: dict[str, Any]) -> Fn:
    op = c.one(n)
    spec = spec_of(n, "asType", "asTypeSpecifier")
    strict = bool(n.get("strict"))
    loc = n.get("locator")

    def as_(f: Frame) -> Any:
        v = op(f)
        if v is None or matches(v, spec):
            return v
        if strict:
            raise ElmError("cast: value is not of the target type", locator=loc)
        return None
    return as_


@handles("Is")
def _is(c: Compiler, n: dict[str, Any]) -> Fn:
    op = c.one(n)
    spec = spec_of(n, "isType", "isTypeSpecifier")
    return lambda f: (lambda v: v is not None and matches(v, spec))(op(f))


# -- logic and nulls


@handles("And")
def _and(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)

    def and_(f: Frame) -> Any:
        x = a(f)
        if x is False:
            return False
        return _and3(x, b(f))
    return and_


@handles("Or")
def _or(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)

    def or_(f: Frame) -> Any:
        x = a(f)
        if x is True:
            return True
        return _or3(x, b(f))
    return or_


@handles("Xor")
def _xor(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)
    return lambda f: (lambda x, y: None if x is None or y is None else x != y)(a(f), b(f))


@handles("Implies")
def _implies(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)
    return lambda f: _or3(_not3(a(f)), b(f))


@handles("Not")
def _not(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)
    return lambda f: _not3(a(f))


@handles("IsNull")
def _is_null(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)
    return lambda f: a(f) is None


@handles("IsTrue")
def _is_true(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)
    return lambda f: a(f) is True


@handles("IsFalse")
def _is_false(c: Compiler, n: dict[str, Any]) -> Fn:
    a = c.one(n)
    return lambda f: a(f) is False


@handles("Coalesce")
def _coalesce(c: Compiler, n: dict[str, Any]) -> Fn:
    ops = c.operands(n)
    single = len(ops) == 1

    def coalesce(f: Frame) -> Any:
        for op in ops:
            v = op(f)
            if single and isinstance(v, list):
                for x in v:
                    if x is not None:
                        return x
            elif v is not None:
                return v
        return None
    return coalesce


@handles("If")
def _if(c: Compiler, n: dict[str, Any]) -> Fn:
    cond, then, else_ = c.expr(n["condition"]), c.expr(n["then"]), c.expr(n["else"])
    return lambda f: then(f) if cond(f) is True else else_(f)


@handles("Case")
def _case(c: Compiler, n: dict[str, Any]) -> Fn:
    comparand = c.expr(n["comparand"]) if n.get("comparand") else None
    items = [(c.expr(i["when"]), c.expr(i["then"])) for i in n.get("caseItem", [])]
    else_ = c.expr(n.get("else"))

    def case(f: Frame) -> Any:
        if comparand is not None:
            v = comparand(f)
            for w, t in items:
                if equal(v, w(f)) is True:
                    return t(f)
        else:
            for w, t in items:
                if w(f) is True:
                    return t(f)
        return else_(f)
    return case


# -- comparison


@handles("Equal")
def _equal(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)
    return lambda f: equal(a(f), b(f))


@handles("NotEqual")
def _not_equal(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)
    return lambda f: _not3(equal(a(f), b(f)))


@handles("Equivalent")
def _equivalent(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)
    return lambda f: equivalent(a(f), b(f))


def _ordering(test: Callable[[int], bool]) -> Handler:
    def handler(c: Compiler, n: dict[str, Any]) -> Fn:
        a, b = c.two(n)

        def cmp(f: Frame) -> Any:
            r = compare(a(f), b(f))
            return None if r is None else test(r)
        return cmp
    return handler


HANDLERS["Less"] = _ordering(lambda r: r < 0)
HANDLERS["LessOrEqual"] = _ordering(lambda r: r <= 0)
HANDLERS["Greater"] = _ordering(lambda r: r > 0)
HANDLERS["GreaterOrEqual"] = _ordering(lambda r: r >= 0)


def _temporal_order(want: int) -> Handler:
    def handler(c: Compiler, n: dict[str, Any]) -> Fn:
        a, b = c.two(n)
        precision = n.get("precision", "").lower() or None

        def test(f: Frame) -> Any:
            x, y = a(f), b(f)
            if x is None or y is None:
                return None
            if isinstance(x, Interval) or isinstance(y, Interval):
                if want < 0:  # x before y: end of x < start of y
                    x = x.high if isinstance(x, Interval) else x
                    y = y.low if isinstance(y, Interval) else y
                else:
                    x = x.low if isinstance(x, Interval) else x
                    y = y.high if isinstance(y, Interval) else y
                if x is None or y is None:
                    return None
            if precision and isinstance(x, (cdt.CqlDate, cdt.CqlDateTime)):
                r = cdt.compare(x, y, precision)
            else:
                r = compare(x, y)
            return None if r is None else r == want
        return test
    return handler


HANDLERS["Before"] = _temporal_order(-1)
HANDLERS["After"] = _temporal_order(1)


@handles("SameAs")
def _same_as(c: Compiler, n: dict[str, Any]) -> Fn:
    a, b = c.two(n)
    precision = n.get("precision", "").lower() or None
    return lambda f: (lambda x, y: None if x is None or y is None else cdt.same_as(x, y, precision))(a(f), b(f))



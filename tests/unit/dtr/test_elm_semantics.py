"""CQL semantics of the ELM engine on hand-written ELM: nulls, dates, intervals, quantities, queries, functions."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_pa.dtr.elm import Code, CqlDate, CqlDateTime, ElmError, Quantity, encode
from tests.unit.dtr.elm_helpers import FH, S, dt, interval, lit, lst, null, op, qty, run


def one(expr: dict[str, Any], *resources: dict[str, Any], **kw: Any) -> Any:
    return run({"X": expr}, *resources, **kw)["X"]


# ---------------------------------------------------------------- three-valued logic and nulls

@pytest.mark.parametrize(("expr", "expected"), [
    (op("And", null(), lit(False)), False),
    (op("And", null(), lit(True)), None),
    (op("Or", null(), lit(True)), True),
    (op("Or", null(), lit(False)), None),
    (op("Not", null()), None),
    (op("Equal", null(), lit(1)), None),
    (op("Equal", lit(1), lit(1.0)), True),
    (op("Equivalent", null(), null()), True),
    (op("Equivalent", lit("A b"), lit("a B")), True),
    (op("Equivalent", lit("A  b"), lit("a B")), False),  # case-insensitive, but whitespace counts (as the oracle)
    (op("Equal", lit("A"), lit("a")), False),
    (op("Coalesce", null(), lit(2), lit(3)), 2),
    (op("Coalesce", lst(null(), lit("x"))), "x"),
    (op("IsNull", null()), True),
    (op("Concatenate", lit("a"), null()), None),
    (op("Exists", lst(null())), False),
    ({"type": "If", "condition": null(), "then": lit(1), "else": lit(2)}, 2),
])
def test_null_logic(expr: dict[str, Any], expected: Any) -> None:
    assert one(expr) == expected


# ---------------------------------------------------------------- dates with precision and offsets

@pytest.mark.parametrize(("expr", "expected"), [
    (op("Less", dt("2020-06"), dt("2020-06-15")), None),           # same month: uncertain
    (op("Less", dt("2020-05"), dt("2020-06-15")), True),
    (op("Equal", dt("2020-06-15"), dt("2020-06-15T10:00:00Z")), None),
    (op("Equal", dt("2020-01-01T23:00:00-05:00"), dt("2020-01-02T04:00:00Z")), True),  # offsets normalised
    (op("After", dt("2020-01-02T01:00:00+05:00"), dt("2020-01-01T21:00:00Z")), False),
])
def test_datetime_comparisons(expr: dict[str, Any], expected: Any) -> None:
    assert one(expr) == expected


def test_date_arithmetic_clamps_month_ends_and_keeps_precision() -> None:
    may31 = {"type": "ToDate", "operand": lit("2024-05-31")}
    assert one(op("Subtract", may31, qty(3, "months"))) == CqlDate(2024, 2, 29)
    assert one(op("Add", dt("2024-01"), qty(45, "days"))) == CqlDateTime(2024, 2, offset=0.0)
    got = one(op("Subtract", {"type": "Now"}, qty(3, "months")), now="2026-01-15T10:00:00.000-05:00")
    assert str(got) == "2025-10-15T10:00:00.000-05:00"


def test_now_and_today_come_from_the_evaluation_time() -> None:
    res = run({"N": {"type": "Now"}, "T": {"type": "Today"}}, now="2026-01-15T23:30:00.000-05:00")
    assert str(res["N"]) == "2026-01-15T23:30:00.000-05:00"
    assert res["T"] == CqlDate(2026, 1, 15)  # the date in the evaluation's own offset, not UTC


@pytest.mark.parametrize(("precision", "a", "b", "expected"), [
    ("Year", "2000-06-15", "2024-06-14", 23),
    ("Year", "2000-06-15", "2024-06-15", 24),
    ("Month", "2024-01-31", "2024-02-29", 1),  # Jan 31 + 1 month clamps to Feb 29, so one whole month
    ("Day", "2024-01-01T23:00:00Z", "2024-01-02T01:00:00Z", 0),
])
def test_duration_between(precision: str, a: str, b: str, expected: int) -> None:
    assert one({"type": "DurationBetween", "precision": precision, "operand": [dt(a), dt(b)]}) == expected


def test_duration_between_imprecise_dates_is_an_uncertainty_range() -> None:
    jan, mar5 = {"type": "ToDate", "operand": lit("2024-01")}, {"type": "ToDate", "operand": lit("2024-03-05")}
    expr = {"type": "DurationBetween", "precision": "Day", "operand": [jan, mar5]}
    got = one(expr)
    assert encode(got) == {"low": 34, "high": 64}
    assert one(op("Greater", expr, lit(30))) is True and one(op("Greater", expr, lit(40))) is None


def test_difference_between_counts_boundaries() -> None:
    expr = {"type": "DifferenceBetween", "precision": "Day", "operand": [dt("2024-01-01T23:00:00Z"),
                                                                         dt("2024-01-02T01:00:00Z")]}
    assert one(expr) == 1


# ---------------------------------------------------------------- intervals

@pytest.mark.parametrize(("expr", "expected"), [
    (op("In", lit(5), interval(lit(1), lit(5), hc=False)), False),
    (op("In", lit(5), interval(lit(1), lit(5))), True),
    (op("In", lit(9), interval(lit(1), null())), True),            # closed null high: unbounded
    (op("In", lit(9), interval(lit(1), null(), hc=False)), None),  # open null high: unknown
    (op("In", null(), interval(lit(1), lit(5))), None),
    (op("Overlaps", interval(lit(1), lit(5)), interval(lit(5), lit(9))), True),
    (op("Overlaps", interval(lit(1), lit(5), hc=False), interval(lit(5), lit(9))), False),
    (op("In", dt("2025-10-15"), interval(dt("2025-10-15T10:00:00Z"), dt("2026-01-15T10:00:00Z"))), None),
    ({"type": "End", "operand": interval(lit(1), lit(4))}, 4),
])
def test_intervals(expr: dict[str, Any], expected: Any) -> None:
    assert one(expr) == expected


# ---------------------------------------------------------------- quantities

def test_quantity_unit_conversion() -> None:
    assert one(op("ConvertQuantity", qty(26, "wk"), lit("mo"))) == Quantity(5.97946612, "mo")
    assert one(op("Less", qty(1, "kPa"), qty(10, "mm[Hg]"))) is True   # 1 kPa = 7.5 mm[Hg]
    assert one(op("Equal", qty(1000, "mg"), qty(1, "g"))) is True
    assert one(op("Less", qty(1, "kg"), qty(1, "m"))) is None         # incomparable units
    assert one(op("ConvertQuantity", qty(1, "kg"), lit("furlong"))) is None


def test_min_max_compare_quantities_across_units() -> None:
    expr = {"type": "Max", "source": lst(qty(6, "kPa"), qty(50, "mm[Hg]"))}  # 6 kPa = 45 mm[Hg]
    assert one(expr) == Quantity(50, "mm[Hg]")


# ---------------------------------------------------------------- lists and queries

def _query(src: dict[str, Any], **parts: Any) -> dict[str, Any]:
    return {"type": "Query", "source": [{"alias": "X", "expression": src}], **parts}


def _ref(name: str = "X") -> dict[str, Any]:
    return {"type": "AliasRef", "name": name}


def test_query_return_is_distinct_unless_all() -> None:
    src = lst(lit(1), lit(2), lit(1))
    assert one(_query(src, **{"return": {"expression": _ref()}})) == [1, 2]
    assert one(_query(src, **{"return": {"distinct": False, "expression": _ref()}})) == [1, 2, 1]


def test_query_where_let_sort() -> None:
    q = _query(lst(lit(3), lit(1), lit(2), null()),
               let=[{"identifier": "D", "expression": op("Add", _ref(), _ref())}],
               where=op("Not", op("IsNull", _ref())),
               sort={"by": [{"type": "ByDirection", "direction": "desc"}]},
               **{"return": {"expression": {"type": "QueryLetRef", "name": "D"}}})
    assert one(q) == [6, 4, 2]


def test_query_with_and_without() -> None:
    rel = {"alias": "Y", "expression": lst(lit(2), lit(3)), "suchThat": op("Equal", _ref(), _ref("Y"))}
    src = lst(lit(1), lit(2), lit(3))
    assert one(_query(src, relationship=[{**rel, "type": "With"}])) == [2, 3]
    assert one(_query(src, relationship=[{**rel, "type": "Without"}])) == [1]


def test_query_aggregate() -> None:
    q = _query(lst(lit(1), lit(2), lit(3)),
               aggregate={"identifier": "S", "starting": lit(0),
                          "expression": op("Add", {"type": "QueryLetRef", "name": "S"}, _ref())})
    assert one(q) == 6


def test_query_over_a_single_value_returns_a_single_value_and_null_source_is_null() -> None:
    assert one(_query(lit(5), **{"return": {"expression": op("Add", _ref(), lit(1))}})) == 6
    assert one(_query(null())) is None


def test_singleton_from_raises_on_more_than_one() -> None:
    assert one(op("SingletonFrom", lst(lit(1)))) == 1
    assert one(op("SingletonFrom", lst())) is None
    with pytest.raises(ElmError) as info:
        one(op("SingletonFrom", lst(lit(1), lit(2))))
    assert info.value.define == "X" and info.value.library == "T"


def test_union_except_flatten_indexer_strings() -> None:
    assert one(op("Union", lst(lit(1), lit(2)), lst(lit(2), lit(3)))) == [1, 2, 3]
    assert one(op("Except", lst(lit(1), lit(2), lit(3)), lst(lit(2)))) == [1, 3]
    assert one({"type": "Flatten", "operand": lst(lst(lit(1)), lst(lit(2), lit(3)))}) == [1, 2, 3]
    assert one(op("Indexer", lst(lit("a")), lit(3))) is None
    assert one({"type": "Combine", "source": lst(lit("W"), null(), lit("H")), "separator": lit(", ")}) == "W, H"
    assert one({"type": "Substring", "stringToSub": lit("abc"), "startIndex": lit(5)}) is None
    assert one({"type": "Split", "stringToSplit": lit("a AND b"), "separator": lit(" AND ")}) == ["a", "b"]
    assert one(op("EndsWith", lit("Encounter/e1"), lit("e1"))) is True


def test_message_error_severity_raises_and_other_severities_pass_through() -> None:
    def msg(sev: str) -> dict[str, Any]:
        return {"type": "Message", "source": lit(1), "condition": lit(True), "code": lit("C1"),
                "severity": lit(sev), "message": lit("boom")}
    assert one(msg("Warning")) == 1
    with pytest.raises(ElmError, match="boom"):
        one(msg("Error"))


# ---------------------------------------------------------------- functions and parameters

def _fn(name: str, operand_type: str, body: dict[str, Any], fluent: bool = False) -> dict[str, Any]:
    return {"name": name, "type": "FunctionDef", "context": "Patient", "fluent": fluent,
            "operand": [{"name": "v", "operandTypeSpecifier": {"type": "NamedTypeSpecifier", "name": operand_type}}],
            "expression": body}


def test_overloads_resolve_by_runtime_operand_type_and_fluent_functions_work() -> None:
    funcs = [_fn("Kind", S + "Integer", lit("int")), _fn("Kind", S + "String", lit("str")),
             _fn("Twice", S + "Integer", op("Add", {"type": "OperandRef", "name": "v"},
                                            {"type": "OperandRef", "name": "v"}), fluent=True)]
    res = run({"A": {"type": "FunctionRef", "name": "Kind", "operand": [lit(1)]},
               "B": {"type": "FunctionRef", "name": "Kind", "operand": [lit("x")]},
               "C": {"type": "FunctionRef", "name": "Twice", "operand": [lit(4)]}}, functions=funcs)
    assert (res["A"], res["B"], res["C"]) == ("int", "str", 8)


def test_parameters_defaults_and_bound_values() -> None:
    params = {"def": [{"name": "Limit", "default": lit(10)}, {"name": "order"}]}
    defs = {"L": {"type": "ParameterRef", "name": "Limit"}, "O": {"type": "ParameterRef", "name": "order"}}
    assert run(defs, parameters=params) == {"L": 10, "O": None}
    got = run(defs, {"resourceType": "DeviceRequest", "id": "d1"}, parameters=params,
              args={"order": "DeviceRequest/d1", "Limit": 3, "undeclared": 1})
    assert got["L"] == 3
    assert encode(got["O"]) == {"@fhir": "DeviceRequest", "id": "d1"}


def test_is_and_as_on_fhir_choice_types() -> None:
    obs = {"resourceType": "Observation", "id": "o", "status": "final", "valueQuantity": {"value": 5, "unit": "%"},
           "effectivePeriod": {"start": "2024-01-01"}}
    src = {"type": "SingletonFrom", "operand": {"type": "Retrieve", "dataType": FH + "Observation"}}
    value = {"type": "Property", "path": "value", "source": src}
    eff = {"type": "Property", "path": "effective", "source": src}
    res = run({"Q": {"type": "As", "asType": FH + "Quantity", "operand": value},
               "S": {"type": "As", "asType": FH + "string", "operand": value},
               "P": {"type": "Is", "isType": FH + "Period", "operand": eff},
               "D": {"type": "Property", "path": "value", "source": {"type": "Property", "path": "start",
                                                                     "source": eff}}}, obs)
    assert encode(res["Q"]) == {"@fhir": "Quantity", "value": {"value": 5, "unit": "%"}}
    assert res["S"] is None and res["P"] is True
    assert str(res["D"]) == "2024-01-01"


def test_strict_cast_fails_loudly() -> None:
    with pytest.raises(ElmError, match="cast"):
        one({"type": "As", "strict": True, "asType": S + "Integer", "operand": lit("x")})


def test_retrieve_filters_by_code_equivalence() -> None:
    cond = {"resourceType": "Condition", "id": "c1", "code": {"coding": [{"system": "http://x", "code": "A"}]}}
    other = {"resourceType": "Condition", "id": "c2", "code": {"coding": [{"system": "http://y", "code": "A"}]}}
    sections: dict[str, Any] = {"codeSystems": {"def": [{"name": "X", "id": "http://x"}]},
                "codes": {"def": [{"name": "a", "id": "A", "codeSystem": {"name": "X"}}]}}
    retrieve = {"type": "Retrieve", "dataType": FH + "Condition", "codeProperty": "code", "codeComparator": "~",
                "codes": {"type": "ToList", "operand": {"type": "CodeRef", "name": "a"}}}
    res = run({"R": retrieve, "C": {"type": "CodeRef", "name": "a"}}, cond, other, **sections)
    assert [r.json["id"] for r in res["R"]] == ["c1"]
    assert res["C"] == Code("A", "http://x")
    assert encode(res["C"]) == {"@type": "Code", "code": "A", "system": "http://x"}  # absent fields stay absent


def test_unsupported_node_is_a_typed_error_naming_the_node() -> None:
    with pytest.raises(ElmError, match="unsupported ELM expression type Frobnicate"):
        one({"type": "Frobnicate", "localId": "7"})


def test_encode_prints_decimals_like_javascript() -> None:
    assert encode(87.0) == 87 and isinstance(encode(87.0), int)
    assert encode(Quantity(54.5, "mm[Hg]")) == {"@type": "Quantity", "value": 54.5, "unit": "mm[Hg]"}
    assert encode(CqlDateTime(2020, 7, 1, 10, 40, 10, None, 1.0)) == {"@type": "DateTime",
                                                                      "value": "2020-07-01T10:40:10+01:00"}


def test_retrieve_date_range_keeps_instants_inside_and_periods_that_overlap() -> None:
    def obs(i: str, **when: Any) -> dict[str, Any]:
        return {"resourceType": "Observation", "id": i, "status": "final", **when}
    retrieve = {"type": "Retrieve", "dataType": FH + "Observation", "dateProperty": "effective",
                "dateRange": interval(dt("2024-01-01T00:00:00Z"), dt("2024-01-31T00:00:00Z"))}
    got = one(retrieve, obs("in", effectiveDateTime="2024-01-10T00:00:00Z"),
              obs("out", effectiveDateTime="2023-12-31T00:00:00Z"),
              obs("period", effectivePeriod={"start": "2023-12-20T00:00:00Z", "end": "2024-01-02T00:00:00Z"}),
              obs("undated"))
    assert [r.json["id"] for r in got] == ["in", "period"]

"""Writes semantics/Semantics.json (hand-written ELM covering CQL operator edge cases) and its patient bundle.

Run from the repo root: ``.venv/bin/python -m tests.data.dtr.make_semantics_elm``; then refresh the oracle
output with the command in README.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.unit.dtr.elm_helpers import S, bundle, dt, interval, library, lit, lst, null, op, qty

HERE = Path(__file__).resolve().parent


def D(text: str) -> dict[str, Any]:  # reads like the CQL Date literal it stands for
    return {"type": "ToDate", "operand": lit(text)}


DEFS: dict[str, dict[str, Any]] = {
    "CalcAge": {"type": "CalculateAge", "precision": "Year", "operand": D("1950-12-10")},
    "CalcAgeMonths": {"type": "CalculateAge", "precision": "Month", "operand": D("2025-02-28")},
    "CalcAgeAt": {"type": "CalculateAgeAt", "precision": "Year", "operand": [D("2000-02-29"), D("2024-02-28")]},
    "StartOf": {"type": "Start", "operand": interval(D("2024-01-01"), D("2024-02-01"))},
    "IvBefore": op("Before", interval(lit(1), lit(3)), interval(lit(4), lit(6))),
    "DtBeforeDayPrec": op("Before", dt("2024-01-01T23:00:00Z"), dt("2024-01-02T01:00:00Z"), precision="Day"),
    "ListIncludes": op("Includes", lst(lit(1), lit(2), lit(3)), lst(lit(3), lit(1))),
    "ListContains": op("Contains", lst(lit(1), null()), null()),
    "InNullList": op("In", lit(1), null()),
    "IvIncludes": op("Includes", interval(lit(1), lit(10)), interval(lit(2), lit(10), hc=False)),
    "DateIvWithArith": op(
        "In", D("2024-03-01"), interval(op("Subtract", D("2024-04-15"), qty(2, "months")), D("2024-04-15"))
    ),
    "CountL": {"type": "Count", "source": lst(lit(1), null(), lit(2))},
    "SumL": {"type": "Sum", "source": lst(lit(1), lit(2.5))},
    "LastL": {"type": "Last", "source": lst(lit(1), lit(2))},
    "FirstEmpty": {"type": "First", "source": lst()},
    "UpperS": {"type": "Upper", "operand": lit("abc")},
    "LengthS": {"type": "Length", "operand": lit("abcd")},
    "ToStringDec": {"type": "ToString", "operand": lit(2.50)},
    "ToStringBool": {"type": "ToString", "operand": lit(True)},
    "ToIntegerS": {"type": "ToInteger", "operand": lit("42")},
    "ToDecimalS": {"type": "ToDecimal", "operand": lit("4.20")},
    "CaseT": {
        "type": "Case",
        "caseItem": [{"when": lit(False), "then": lit("a")}, {"when": lit(True), "then": lit("b")}],
        "else": lit("c"),
    },
    "RoundHalf": {"type": "Round", "operand": lit(2.5)},
    "RoundNegHalf": {"type": "Round", "operand": lit(-2.5)},
    "RoundPrec": {"type": "Round", "operand": lit(3.14159), "precision": lit(2)},
    "AbsQty": {"type": "Abs", "operand": qty(-3, "mg")},
    "FloorNeg": {"type": "Floor", "operand": lit(-1.5)},
    "TruncNeg": {"type": "Truncate", "operand": lit(-1.5)},
    "ModInt": op("Modulo", lit(-7), lit(3)),
    "DivTrunc": op("TruncatedDivide", lit(-7), lit(2)),
    "DivZero": {"type": "Divide", "operand": [lit(1.0), lit(0.0)]},
    "Pow": op("Power", lit(2), lit(10)),
    "MatchesT": op("Matches", lit("E0470"), lit("E04[0-9]+")),
    "ReplaceT": {"type": "ReplaceMatches", "operand": [lit("a-b-c"), lit("-"), lit("+")]},
    "PosOf": {"type": "PositionOf", "pattern": lit("b"), "string": lit("abc")},
    "IndexOfL": {"type": "IndexOf", "source": lst(lit(3), lit(4)), "element": lit(4)},
    "SliceL": {"type": "Slice", "source": lst(lit(1), lit(2), lit(3)), "startIndex": lit(1), "endIndex": null()},
    "AvgL": {"type": "Avg", "source": lst(lit(1.0), lit(2.0), null())},
    "SameOrBeforeDay": op("SameOrBefore", dt("2024-01-01T23:00:00Z"), dt("2024-01-01T01:00:00Z"), precision="Day"),
    "SameOrAfterU": op("SameOrAfter", dt("2024-01"), dt("2024-01-15")),
    "ToBool": {"type": "ToBoolean", "operand": lit("Y")},
    "YearFrom": {"type": "DateTimeComponentFrom", "precision": "Month", "operand": dt("2024-03-05")},
    "AndNull": op("And", null(), lit(True)),
    "OrNull": op("Or", null(), lit(True)),
    "NotNull": op("Not", null()),
    "EqNull": op("Equal", null(), lit(1)),
    "EquivNulls": op("Equivalent", null(), null()),
    "EquivStr": op("Equivalent", lit("A  b"), lit("a B")),
    "IntDec": op("Equal", lit(1), lit(1.0)),
    "DtLessUncertain": op("Less", dt("2020-06"), dt("2020-06-15")),
    "DtLessCertain": op("Less", dt("2020-05"), dt("2020-06-15")),
    "DtEqualPrec": op("Equal", dt("2020-06-15"), dt("2020-06-15T10:00:00Z")),
    "DtEqualTz": op("Equal", dt("2020-01-01T23:00:00-05:00"), dt("2020-01-02T04:00:00Z")),
    "DtAfterTz": op("After", dt("2020-01-02T01:00:00+05:00"), dt("2020-01-01T21:00:00Z")),
    "DateMinusMonths": op("Subtract", D("2024-05-31"), qty(3, "months")),
    "DateMonthPlusDays": op("Add", D("2024-01"), qty(45, "days")),
    "DtPlusWeeks": op("Add", dt("2024-02-25T10:00:00Z"), qty(1, "week")),
    "DtMinusYears": op("Subtract", dt("2024-02-29T10:00:00.123+02:00"), qty(1, "year")),
    "NowMinus3mo": op("Subtract", {"type": "Now"}, qty(3, "months")),
    "Today": {"type": "Today"},
    "DurYears1": {"type": "DurationBetween", "precision": "Year", "operand": [D("2000-06-15"), D("2024-06-14")]},
    "DurYears2": {"type": "DurationBetween", "precision": "Year", "operand": [D("2000-06-15"), D("2024-06-15")]},
    "DurMonths": {"type": "DurationBetween", "precision": "Month", "operand": [D("2024-01-31"), D("2024-02-29")]},
    "DurDays": {
        "type": "DurationBetween",
        "precision": "Day",
        "operand": [dt("2024-01-01T23:00:00Z"), dt("2024-01-02T01:00:00Z")],
    },
    "DiffDays": {
        "type": "DifferenceBetween",
        "precision": "Day",
        "operand": [dt("2024-01-01T23:00:00Z"), dt("2024-01-02T01:00:00Z")],
    },
    "DiffYears": {"type": "DifferenceBetween", "precision": "Year", "operand": [D("2023-12-31"), D("2024-01-01")]},
    "DurHoursNeg": {
        "type": "DurationBetween",
        "precision": "Hour",
        "operand": [dt("2024-01-02T01:00:00Z"), dt("2024-01-01T22:30:00Z")],
    },
    "DurUncertain": {"type": "DurationBetween", "precision": "Day", "operand": [D("2024-01"), D("2024-03-05")]},
    "InOpenHigh": op("In", lit(5), interval(lit(1), lit(5), hc=False)),
    "InClosed": op("In", lit(5), interval(lit(1), lit(5))),
    "InNullClosedHigh": op("In", lit(9), interval(lit(1), null())),
    "InNullOpenHigh": op("In", lit(9), interval(lit(1), null(), hc=False)),
    "NullInInterval": op("In", null(), interval(lit(1), lit(5))),
    "OverlapsTouch": op("Overlaps", interval(lit(1), lit(5)), interval(lit(5), lit(9))),
    "OverlapsOpen": op("Overlaps", interval(lit(1), lit(5), hc=False), interval(lit(5), lit(9))),
    "OverlapsNullLow": op("Overlaps", interval(null(), lit(5)), interval(lit(3), lit(9))),
    "DayInDtInterval": op("In", dt("2025-10-15"), interval(dt("2025-10-15T10:00:00Z"), dt("2026-01-15T10:00:00Z"))),
    "DtInInterval": op(
        "In", dt("2025-11-15T10:00:00-05:00"), interval(dt("2025-10-15T10:00:00Z"), dt("2026-01-15T10:00:00Z"))
    ),
    "EndOf": {"type": "End", "operand": interval(lit(1), lit(4))},
    "IntervalValue": interval(dt("2025-10-15T10:00:00Z"), null(), True, False),
    "ConvWkMo": op("ConvertQuantity", qty(26, "wk"), lit("mo")),
    "ConvDMo": op("ConvertQuantity", qty(90, "d"), lit("mo")),
    "ConvMgG": op("ConvertQuantity", qty(1500, "mg"), lit("g")),
    "QtyLessKpa": op("Less", qty(1, "kPa"), qty(10, "mm[Hg]")),
    "QtyEqMgG": op("Equal", qty(1000, "mg"), qty(1, "g")),
    "QtyIncomparable": op("Less", qty(1, "kg"), qty(1, "m")),
    "MaxQty": {"type": "Max", "source": lst(qty(6, "kPa"), qty(50, "mm[Hg]"))},
    "MinMixed": {"type": "Min", "source": lst(lit(3), null(), lit(1))},
    "UnionDistinct": op("Union", lst(lit(1), lit(2)), lst(lit(2), lit(3))),
    "UnionNull": op("Union", lst(lit(1)), null()),
    "ExceptL": op("Except", lst(lit(1), lit(2), lit(3), lit(1)), lst(lit(2))),
    "FlattenL": {"type": "Flatten", "operand": lst(lst(lit(1)), lst(lit(2), lit(3)))},
    "IndexOut": op("Indexer", lst(lit("a")), lit(3)),
    "IndexStr": op("Indexer", lit("abc"), lit(1)),
    "CombineNulls": {"type": "Combine", "source": lst(lit("W"), null(), lit("H")), "separator": lit(", ")},
    "CombineEmpty": {"type": "Combine", "source": lst(null())},
    "SubstrOut": {"type": "Substring", "stringToSub": lit("abc"), "startIndex": lit(5)},
    "SubstrLen": {"type": "Substring", "stringToSub": lit("abcdef"), "startIndex": lit(1), "length": lit(3)},
    "SplitL": {"type": "Split", "stringToSplit": lit("a AND b AND"), "separator": lit(" AND ")},
    "EndsWithT": op("EndsWith", lit("Encounter/e1"), lit("e1")),
    "ConcatNull": op("Concatenate", lit("a"), null()),
    "ExistsNulls": op("Exists", lst(null())),
    "CoalesceList": op("Coalesce", lst(null(), lit("x"))),
    "CoalesceArgs": op("Coalesce", null(), lst(), lit(3)),
    "DistinctQuery": {
        "type": "Query",
        "source": [{"alias": "X", "expression": lst(lit(1), lit(2), lit(1))}],
        "return": {"expression": {"type": "AliasRef", "name": "X"}},
    },
    "NoDistinct": {
        "type": "Query",
        "source": [{"alias": "X", "expression": lst(lit(1), lit(2), lit(1))}],
        "return": {"distinct": False, "expression": {"type": "AliasRef", "name": "X"}},
    },
    "SortDesc": {
        "type": "Query",
        "source": [{"alias": "X", "expression": lst(lit(3), lit(1), lit(2))}],
        "sort": {"by": [{"type": "ByDirection", "direction": "desc"}]},
    },
    "SortAsc": {
        "type": "Query",
        "source": [{"alias": "X", "expression": lst(lit(3), lit(1), lit(2))}],
        "sort": {"by": [{"type": "ByDirection", "direction": "asc"}]},
    },
    "SortDates": {
        "type": "Query",
        "source": [{"alias": "X", "expression": lst(dt("2020-01-02"), dt("2019-05-01"), dt("2021"))}],
        "sort": {"by": [{"type": "ByDirection", "direction": "asc"}]},
    },
    "WithRel": {
        "type": "Query",
        "source": [{"alias": "X", "expression": lst(lit(1), lit(2), lit(3))}],
        "relationship": [
            {
                "type": "With",
                "alias": "Y",
                "expression": lst(lit(2), lit(3)),
                "suchThat": op("Equal", {"type": "AliasRef", "name": "X"}, {"type": "AliasRef", "name": "Y"}),
            }
        ],
    },
    "WithoutRel": {
        "type": "Query",
        "source": [{"alias": "X", "expression": lst(lit(1), lit(2), lit(3))}],
        "relationship": [
            {
                "type": "Without",
                "alias": "Y",
                "expression": lst(lit(2), lit(3)),
                "suchThat": op("Equal", {"type": "AliasRef", "name": "X"}, {"type": "AliasRef", "name": "Y"}),
            }
        ],
    },
    "Aggregate": {
        "type": "Query",
        "source": [{"alias": "X", "expression": lst(lit(1), lit(2), lit(3))}],
        "aggregate": {
            "identifier": "S",
            "starting": lit(0),
            "expression": op("Add", {"type": "QueryLetRef", "name": "S"}, {"type": "AliasRef", "name": "X"}),
        },
    },
    "SingleSource": {
        "type": "Query",
        "source": [{"alias": "X", "expression": lit(5)}],
        "return": {"expression": op("Add", {"type": "AliasRef", "name": "X"}, lit(1))},
    },
    "NullSource": {"type": "Query", "source": [{"alias": "X", "expression": null()}]},
    "TupleV": {"type": "Tuple", "element": [{"name": "b", "value": lit(1)}, {"name": "a", "value": null()}]},
    "TupleDistinct": {
        "type": "Distinct",
        "operand": lst(
            {"type": "Tuple", "element": [{"name": "a", "value": lit(1)}]},
            {"type": "Tuple", "element": [{"name": "a", "value": lit(1)}]},
        ),
    },
    "CodeInst": {
        "type": "Instance",
        "classType": S + "Code",
        "element": [{"name": "code", "value": lit("x")}, {"name": "system", "value": lit("s")}],
    },
    "ConceptInst": {
        "type": "Instance",
        "classType": S + "Concept",
        "element": [
            {
                "name": "codes",
                "value": lst(
                    {"type": "Instance", "classType": S + "Code", "element": [{"name": "code", "value": lit("x")}]}
                ),
            }
        ],
    },
    "QtyInst": {
        "type": "Instance",
        "classType": S + "Quantity",
        "element": [{"name": "value", "value": lit(2.50)}, {"name": "unit", "value": lit("mg")}],
    },
    "DecimalOut": lit(0.1 + 0.2),
    "DivInt": {"type": "Divide", "operand": [lit(7.0), lit(2.0)]},
    "IsInteger": {
        "type": "Is",
        "isTypeSpecifier": {"type": "NamedTypeSpecifier", "name": S + "Integer"},
        "operand": lit(5),
    },
    "AsStringFromInt": {"type": "As", "asType": S + "String", "operand": lit(5)},
}


def main() -> None:
    (HERE / "semantics").mkdir(exist_ok=True)
    (HERE / "semantics" / "Semantics.json").write_text(
        json.dumps(library(DEFS, name="Semantics", version="1.0.0"), indent=1), encoding="utf-8"
    )
    (HERE / "semantics-bundle.json").write_text(json.dumps(bundle(), indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()

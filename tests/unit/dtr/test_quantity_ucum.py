"""Quantity conversion: the exact table for everyday units, UCUM (ucumvert) for the rest."""

from __future__ import annotations

import pytest

from fhir_pa.dtr.elm.quantity import compare, convert, equal
from fhir_pa.dtr.elm.types import Quantity


def q(value: float | str, unit: str) -> Quantity:
    return Quantity(float(value), unit)


@pytest.mark.parametrize(("source", "target", "expected"), [
    (q(1, "mo"), "d", 30.4375),                 # table: UCUM mean Julian month
    (q(760, "mm[Hg]"), "kPa", 101.32501444),     # table
    (q(1, "cm[H2O]"), "kPa", 0.0980665),         # UCUM fallback
    (q(100, "mg/dL"), "g/L", 1.0),               # UCUM fallback
    (q(3, "10*3/uL"), "10*9/L", 3.0),            # UCUM fallback (cell counts)
])
def test_conversions(source: Quantity, target: str, expected: float) -> None:
    converted = convert(source, target)
    assert converted is not None and converted.value is not None
    assert float(converted.value) == pytest.approx(expected, rel=1e-9) and converted.unit == target


def test_comparisons_across_units_and_incomparable_ones() -> None:
    assert compare(q(10, "cm[H2O]"), q(1, "kPa")) == -1
    assert equal(q(100, "mg/dL"), q(1, "g/L")) is True
    assert compare(q(1, "kg"), q(1, "m")) is None, "different dimensions"
    assert compare(q(1, "not-a-unit"), q(1, "g")) is None
    assert convert(q(1, "[foo_bar]"), "g") is None

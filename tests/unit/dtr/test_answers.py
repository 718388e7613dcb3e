"""Result → answer mapping for every item type, with the CQL and FHIR value kinds the engine returns."""

from __future__ import annotations

import decimal
from typing import Any

import pytest

from fhir_pa.dtr.answers import Unmappable, answer_options, to_answers
from fhir_pa.dtr.elm import Code, Concept, CqlDate, CqlDateTime, CqlTime, FhirNode, Quantity
from fhir_pa.dtr.elm import fhir as elm_fhir


def one(value: Any, item_type: str, options: list[dict[str, Any]] | None = None, **item: Any) -> list[dict[str, Any]]:
    return to_answers(value, {"linkId": "x", "type": item_type, **item}, options or []).answers


@pytest.mark.parametrize(("value", "item_type", "expected"), [
    (True, "boolean", {"valueBoolean": True}),
    ("false", "boolean", {"valueBoolean": False}),
    (7.33, "decimal", {"valueDecimal": 7.33}),
    (decimal.Decimal("32"), "decimal", {"valueDecimal": 32}),
    (Quantity(54.5, "mm[Hg]"), "decimal", {"valueDecimal": 54.5}),
    (3, "integer", {"valueInteger": 3}),
    (CqlDate(2015, 2, 23), "date", {"valueDate": "2015-02-23"}),
    # a DateTime keeps its own calendar date (23:30 at +01:00 is the previous day in UTC, not here)
    (CqlDateTime(2020, 7, 1, 0, 30, 0, 0, 1.0), "date", {"valueDate": "2020-07-01"}),
    ("2020-07-01T10:40:10+01:00", "date", {"valueDate": "2020-07-01"}),
    (CqlDateTime(2020, 7, 1, 10, 40, 10, None, 1.0), "dateTime", {"valueDateTime": "2020-07-01T10:40:10+01:00"}),
    (CqlTime(10, 30, 0, None), "time", {"valueTime": "10:30:00"}),
    ("Oster", "string", {"valueString": "Oster"}),
    (42, "text", {"valueString": "42"}),
    ("http://x.org", "url", {"valueUri": "http://x.org"}),
    (Quantity(87, "%"), "quantity", {"valueQuantity": {"value": 87, "unit": "%", "system": "http://unitsofmeasure.org",
                                                        "code": "%"}}),
    (Quantity(5, "1"), "quantity", {"valueQuantity": {"value": 5}}),
    ({"resourceType": "Practitioner", "id": "p1"}, "reference", {"valueReference": {"reference": "Practitioner/p1"}}),
    ("Practitioner/p1", "reference", {"valueReference": {"reference": "Practitioner/p1"}}),
    ({"contentType": "text/plain", "data": "eA=="}, "attachment",
     {"valueAttachment": {"contentType": "text/plain", "data": "eA=="}}),
])
def test_each_answer_type(value: Any, item_type: str, expected: dict[str, Any]) -> None:
    assert one(value, item_type) == [expected]


def test_integer_rounds_with_a_warning() -> None:
    mapped = to_answers(5.97946612, {"linkId": "x", "type": "integer"})
    assert mapped.answers == [{"valueInteger": 6}] and mapped.warnings == ["non-integer result rounded"]


def test_fhir_primitives_and_elements_from_the_engine() -> None:
    patient = elm_fhir.resource({"resourceType": "Patient", "id": "p", "birthDate": "2015-02-23",
                                 "gender": "male"})
    birth = elm_fhir.child(patient, "birthDate")
    assert isinstance(birth, FhirNode)
    assert one(birth, "date") == [{"valueDate": "2015-02-23"}]
    assert one(patient, "reference") == [{"valueReference": {"reference": "Patient/p"}}]
    coding = FhirNode("Coding", "Coding", {"system": "s", "code": "c"})
    assert one(coding, "open-choice") == [{"valueCoding": {"system": "s", "code": "c"}}]


def test_empty_and_lists() -> None:
    assert one(None, "string") == [] and one([], "string") == [] and one([None], "string") == []
    repeating = to_answers(["a", "b", "a"], {"linkId": "x", "type": "string", "repeats": True})
    assert repeating.answers == [{"valueString": "a"}, {"valueString": "b"}] and repeating.warnings == []
    single = to_answers(["a", "b"], {"linkId": "x", "type": "string"})
    assert single.answers == [{"valueString": "a"}]
    assert single.warnings == ["2 results for a non-repeating item; the first is used"]


def test_choice_matches_options_by_code_or_display() -> None:
    gender = {"system": "http://hl7.org/fhir/administrative-gender", "code": "male", "display": "Male"}
    options: list[dict[str, Any]] = [{"valueCoding": gender}, {"valueString": "Other text"}]
    full = {"valueCoding": {"system": "http://hl7.org/fhir/administrative-gender", "code": "male", "display": "Male"}}
    assert one("male", "choice", options) == [full]
    assert one("MALE", "choice", options) == [full]
    assert one(Code("male", "http://hl7.org/fhir/administrative-gender"), "choice", options) == [full]
    assert one(Concept((Code("male"),)), "choice", options) == [full]
    assert one("other text", "choice", options) == [{"valueString": "Other text"}]
    assert one(Code("male", "http://other"), "choice", options) == [{"valueCoding": {"system": "http://other",
                                                                                    "code": "male"}}]
    unmatched = to_answers("unknown", {"linkId": "x", "type": "choice"}, options)
    assert unmatched.answers == [{"valueCoding": {"code": "unknown"}}]
    assert unmatched.warnings == ["text result matches no answer option"]
    assert one("free", "open-choice", options) == [{"valueString": "free"}]


def test_answer_value_set_from_contained_or_package() -> None:
    q = {"contained": [{"resourceType": "ValueSet", "id": "vs", "expansion": {"contains": [
        {"system": "s", "code": "a", "display": "A"}]}}]}
    assert answer_options({"answerValueSet": "#vs"}, q, {}) == [{"valueCoding": {"system": "s", "code": "a",
                                                                                 "display": "A"}}]
    package_vs = {"url": "http://vs", "compose": {"include": [{"system": "t", "concept": [{"code": "b"}]}]}}
    assert answer_options({"answerValueSet": "http://vs|1"}, {}, {"http://vs": package_vs}) == [
        {"valueCoding": {"system": "t", "code": "b"}}]
    assert answer_options({"answerValueSet": "#missing"}, q, {}) == []


@pytest.mark.parametrize(("value", "item_type"), [("text", "boolean"), ("abc", "decimal"), (True, "date"),
                                                  (3, "reference"), ("x", "group")])
def test_unmappable_results_raise(value: Any, item_type: str) -> None:
    with pytest.raises(Unmappable):
        one(value, item_type)

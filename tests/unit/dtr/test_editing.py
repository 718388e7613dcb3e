"""A person's answers placed on a populated response."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_pa.dtr.editing import set_answers
from fhir_pa.dtr.origin import origin_extension, read_author, read_source
from fhir_pa.errors import InputError

FORM: dict[str, Any] = {"resourceType": "Questionnaire", "item": [
    {"linkId": "g", "type": "group", "text": "Group", "item": [
        {"linkId": "a", "type": "string"}, {"linkId": "b", "type": "date"}, {"linkId": "c", "type": "boolean"}]},
    {"linkId": "note", "type": "display"}]}


def test_a_missing_item_is_created_in_questionnaire_order_with_a_manual_origin() -> None:
    response: dict[str, Any] = {"resourceType": "QuestionnaireResponse", "item": [{"linkId": "g", "item": [
        {"linkId": "a", "answer": [{"valueString": "x", "extension": [origin_extension("auto-client")]}]},
        {"linkId": "c", "answer": [{"valueBoolean": True, "extension": [origin_extension("auto-client")]}]}]}]}
    out = set_answers(response, FORM, "b", [{"valueDate": "2026-01-02"}], author="Practitioner/p")
    group = out["item"][0]
    assert [i["linkId"] for i in group["item"]] == ["a", "b", "c"]
    answer = group["item"][1]["answer"][0]
    assert (answer["valueDate"], read_source(answer), read_author(answer)) == ("2026-01-02", "manual", "Practitioner/p")
    assert response["item"][0]["item"][1]["linkId"] == "c", "the input is not changed"


def test_replacing_an_automatic_answer_is_an_override_and_an_empty_list_clears() -> None:
    response = {"resourceType": "QuestionnaireResponse", "item": [{"linkId": "g", "item": [
        {"linkId": "a", "answer": [{"valueString": "x", "extension": [origin_extension("auto-client")]}]}]}]}
    out = set_answers(response, FORM, "a", [{"valueString": "y"}], author="Practitioner/p")
    assert read_source(out["item"][0]["item"][0]["answer"][0]) == "override"
    cleared = set_answers(out, FORM, "a", [], author="Practitioner/p")
    assert "answer" not in cleared["item"][0]["item"][0]


def test_an_empty_response_gets_its_groups_created() -> None:
    out = set_answers({"resourceType": "QuestionnaireResponse"}, FORM, "c", [{"valueBoolean": False}],
                      author="Practitioner/p")
    assert out["item"] == [{"linkId": "g", "text": "Group", "item": [{"linkId": "c", "answer": [
        {"valueBoolean": False, "extension": [origin_extension("manual", author="Practitioner/p")]}]}]}]


@pytest.mark.parametrize("link_id", ["zzz", "g", "note"])
def test_unknown_group_and_display_items_take_no_answers(link_id: str) -> None:
    with pytest.raises(InputError) as caught:
        set_answers({}, FORM, link_id, [{"valueString": "x"}], author="Practitioner/p")
    assert caught.value.path == f"Questionnaire.item.where(linkId='{link_id}')"

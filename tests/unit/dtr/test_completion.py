"""Completion checks of a QuestionnaireResponse against its Questionnaire, on test-kit fixtures and edge cases."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_pa.dtr.completion import (
    IncompleteResponse,
    completion_issues,
    compute_enabled,
    ensure_complete,
    item_path,
)
from tests.conftest import load_fixture

Json = dict[str, Any]


def _questionnaire(package: str) -> Json:
    bundle = load_fixture("dtr", "packages", package)
    q: Json = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Questionnaire")
    return q


def _qr(name: str) -> Json:
    data = load_fixture("dtr", "questionnaire-responses", name)
    qr: Json = data[0] if isinstance(data, list) else data
    return qr


def _find(node: Json, link_id: str) -> Json:
    for item in node.get("item", []):
        if item.get("linkId") == link_id:
            return item  # type: ignore[no-any-return]
        for child in [item, *item.get("answer", [])]:
            try:
                return _find(child, link_id)
            except KeyError:
                pass
    raise KeyError(link_id)


def test_dinner_conformant_response_is_complete() -> None:
    questionnaire = _questionnaire("dinner-static-package-bundle.testkit.json")
    ensure_complete(_qr("dinner_questionnaire_response_conformant.spec.json"), questionnaire)
    # the "missing answers" fixture lacks origins, not answers: completion itself is fine (origins: test_response)
    assert completion_issues(_qr("dinner_questionnaire_response_missing_answers.spec.json"), questionnaire) == []


def test_dinner_static_enablement_follows_the_burger_choice() -> None:
    questionnaire = _questionnaire("dinner-static-package-bundle.testkit.json")
    enabled = compute_enabled(questionnaire, _qr("dinner_questionnaire_response_conformant.spec.json"))
    assert enabled["3.2.a"] is True and enabled["3.2.b"] is False


def test_rad_missing_cql_answer_is_named_by_link_id() -> None:
    questionnaire = _questionnaire("rad-package-bundle.testkit.json")
    good = {i.path for i in completion_issues(_qr("questionnaire_response_conformant.spec.json"), questionnaire)}
    bad = completion_issues(_qr("questionnaire_response_cql_answer_missing.spec.json"), questionnaire)
    extra = [i for i in bad if i.path not in good]
    assert [(i.path, i.rule) for i in extra] == [(item_path("PBD.2", ".answer"), "required")]
    # the in-progress RAD draft leaves required items for the user; none of its problems is about answer types
    assert {i.rule for i in completion_issues(_qr("questionnaire_response_conformant.spec.json"),
                                              questionnaire)} == {"required"}
    missing = {i.path for i in completion_issues(_qr("questionnaire_response_missing_data_requirement.spec.json"),
                                                 questionnaire)}
    assert item_path("PBD.2", ".answer") in missing - good


def test_ensure_complete_lists_every_issue() -> None:
    questionnaire = _questionnaire("rad-package-bundle.testkit.json")
    with pytest.raises(IncompleteResponse) as caught:
        ensure_complete(_qr("questionnaire_response_cql_answer_missing.spec.json"), questionnaire)
    paths = {i.path for i in caught.value.issues}
    assert item_path("PBD.2", ".answer") in paths and item_path("SIGPNP.1", ".answer") in paths
    assert caught.value.code == "incomplete"
    # 4.4 is required but only enabled when 4.3 = Other: it must not be reported
    assert item_path("4.4", ".answer") not in paths
    assert "Oster" not in str(caught.value)  # no patient data in the message


Q: Json = {"resourceType": "Questionnaire", "item": [
    {"linkId": "1", "type": "choice", "required": True,
     "answerOption": [{"valueCoding": {"system": "s", "code": "a"}}, {"valueCoding": {"system": "s", "code": "b"}}]},
    {"linkId": "2", "type": "integer", "required": True, "enableBehavior": "any",
     "enableWhen": [{"question": "1", "operator": "=", "answerCoding": {"system": "s", "code": "b"}},
                    {"question": "3", "operator": ">=", "answerDecimal": 10}]},
    {"linkId": "3", "type": "decimal"},
    {"linkId": "4", "type": "string", "readOnly": True},
    {"linkId": "5", "type": "boolean", "repeats": False,
     "enableWhen": [{"question": "3", "operator": "exists", "answerBoolean": False}]},
    {"linkId": "g", "type": "group", "required": True, "item": [{"linkId": "g.1", "type": "date"}]},
    {"linkId": "6", "type": "open-choice", "answerOption": [{"valueCoding": {"code": "x"}}]},
    {"linkId": "7", "type": "display"},
]}


def _resp(*items: Json) -> Json:
    return {"resourceType": "QuestionnaireResponse", "status": "in-progress", "item": list(items)}


def _answer(link_id: str, *values: Json) -> Json:
    return {"linkId": link_id, "answer": list(values)}


BASE_ITEMS = [_answer("1", {"valueCoding": {"system": "s", "code": "a"}}),
              {"linkId": "g", "item": [_answer("g.1", {"valueDate": "2026-01-01"})]}]


def _rules(response: Json, **kw: Any) -> dict[str, str]:
    return {i.path: i.rule for i in completion_issues(response, Q, **kw)}


def test_synthetic_complete() -> None:
    assert _rules(_resp(*BASE_ITEMS, _answer("5", {"valueBoolean": True}))) == {}


def test_enable_behavior_any_and_operators() -> None:
    # 2 enabled by 3 >= 10 (any): now required and missing
    issues = _rules(_resp(*BASE_ITEMS, _answer("3", {"valueDecimal": 12.5})))
    assert issues == {item_path("2", ".answer"): "required"}
    # 3 < 10 and 1 = a: 2 disabled, answering it is an error
    issues = _rules(_resp(*BASE_ITEMS, _answer("3", {"valueDecimal": 9}), _answer("2", {"valueInteger": 1})))
    assert issues == {item_path("2"): "enableWhen"}
    # exists false: 5 disabled once 3 is answered
    assert compute_enabled(Q, _resp(_answer("3", {"valueDecimal": 1})))["5"] is False
    assert compute_enabled(Q, _resp())["5"] is True


def test_enablement_from_callable_wins() -> None:
    # the caller says 2 is enabled (its CQL decided) and g is not: g's answers are now out of place
    issues = _rules(_resp(*BASE_ITEMS), enabled=lambda link_id: link_id not in ("g", "g.1"))
    assert issues == {item_path("2", ".answer"): "required", item_path("g"): "enableWhen"}


def test_answer_type_option_repeats_display() -> None:
    response = _resp(
        _answer("1", {"valueCoding": {"system": "other", "code": "a"}}),
        {"linkId": "g", "item": [_answer("g.1", {"valueString": "2026"})]},
        _answer("5", {"valueBoolean": True}, {"valueBoolean": False}),
        _answer("6", {"valueString": "free text"}, {"valueCoding": {"code": "y"}}),
        _answer("7", {"valueString": "no"}),
        _answer("nope", {"valueString": "?"}),
    )
    issues = completion_issues(response, Q)
    got = {(i.path, i.rule) for i in issues}
    assert (item_path("1", ".answer[0]"), "answerOption") in got
    assert (item_path("g.1", ".answer[0]"), "answer-type") in got
    assert (item_path("5", ".answer"), "repeats") in got
    assert (item_path("6", ".answer[1]"), "answerOption") in got
    assert (item_path("6", ".answer[0]"), "answerOption") not in got  # open-choice takes free text
    assert (item_path("7", ".answer"), "answer-type") in got
    assert (item_path("nope"), "linkId") in got


def test_required_group_without_answers() -> None:
    assert _rules(_resp(BASE_ITEMS[0], {"linkId": "g", "item": [{"linkId": "g.1"}]})) == {
        item_path("g"): "required"}
    assert _rules(_resp(BASE_ITEMS[0])) == {item_path("g"): "required"}


def test_read_only_untouched() -> None:
    draft = _resp(*BASE_ITEMS, _answer("4", {"valueString": "from payer"}))
    changed = copy.deepcopy(draft)
    changed["item"][2]["answer"][0]["valueString"] = "edited"
    assert _rules(changed, draft=draft) == {item_path("4", ".answer"): "readOnly"}
    assert _rules(draft, draft=draft) == {}
    manual = _resp(*BASE_ITEMS, _answer("4", {"valueString": "typed", "extension": [
        {"url": "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin",
         "extension": [{"url": "source", "valueCode": "manual"}]}]}))
    assert _rules(manual) == {item_path("4", ".answer"): "readOnly"}


def test_answer_value_set_from_package() -> None:
    questionnaire = {"resourceType": "Questionnaire", "item": [
        {"linkId": "v", "type": "choice", "answerValueSet": "http://vs|1"}]}
    vs = {"resourceType": "ValueSet", "url": "http://vs", "version": "1",
          "expansion": {"contains": [{"system": "s", "code": "ok"}]}}
    bad = _resp(_answer("v", {"valueCoding": {"system": "s", "code": "no"}}))
    good = _resp(_answer("v", {"valueCoding": {"system": "s", "code": "ok"}}))
    assert [i.rule for i in completion_issues(bad, questionnaire, valuesets=[vs])] == ["answerValueSet"]
    assert completion_issues(good, questionnaire, valuesets=[vs]) == []
    assert completion_issues(bad, questionnaire) == []  # unknown value set: not judged


def test_adaptive_fragment_missing_dinner_choice() -> None:
    params = load_fixture("dtr", "next-question", "next_question_input_params_missing_answer.spec.json")
    response = params["parameter"][0]["resource"]
    issues = completion_issues(response, response["contained"][0])
    assert [(i.path, i.rule) for i in issues] == [(item_path("3.1", ".answer"), "required")]
    assert _find(response, "PBD.1")["answer"]

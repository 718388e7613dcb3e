"""Reading CDS Hooks responses: typed cards and actions, lenient inside, InvalidResponse only for non-responses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fhir_pa.crd.cards import CARD_TYPE_SYSTEMS, Indicator, parse_hook_response
from fhir_pa.crd.coverage_info import EXT_COVERAGE_INFORMATION
from fhir_pa.errors import InvalidResponse

NEW_TOPIC = "http://terminology.hl7.org/CodeSystem/cdshooks-card-type"
OLD_TOPIC = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"


def _card(**overrides: Any) -> dict[str, Any]:
    card: dict[str, Any] = {"uuid": "c-1", "summary": "Summary", "indicator": "info",
                            "source": {"label": "Payer", "topic": {"system": NEW_TOPIC, "code": "guideline"}}}
    card.update(overrides)
    return card


def _response(*cards: dict[str, Any], actions: list[Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"cards": list(cards)}
    if actions is not None:
        body["systemActions"] = actions
    return body


@pytest.mark.parametrize("data", [json.dumps(_response(_card())), json.dumps(_response(_card())).encode(),
                                  _response(_card())])
def test_reads_text_bytes_and_mappings(data: Any) -> None:
    response = parse_hook_response(data)
    assert [(c.uuid, c.summary, c.indicator) for c in response.cards] == [("c-1", "Summary", Indicator.INFO)]
    assert response.system_actions == () and response.warnings == ()


@pytest.mark.parametrize(
    ("data", "needle", "path"),
    [
        (b"<html>Bad gateway</html>", "is not JSON (it looks like HTML or XML)", "$"),
        (b'{"cards": [', "is not JSON", "$"),
        (b"", "is empty", None),
        (b"[1, 2]", "is a list in JSON, not a CDS Hooks response object", "$"),
        (b'{"systemActions": []}', "has no 'cards'", "$.cards"),
        (b'{"cards": {"summary": "x"}}', "'cards' is an object, not a list", "$.cards"),
        (b"\xff\xfe", "is not UTF-8", None),
    ],
)
def test_non_responses_are_invalid_responses_with_a_path(data: bytes, needle: str, path: str | None) -> None:
    with pytest.raises(InvalidResponse) as caught:
        parse_hook_response(data, source="reply.json")
    assert caught.value.message.startswith("reply.json ") and needle in caught.value.message
    assert caught.value.path == path


def test_empty_cards_is_a_valid_response() -> None:
    response = parse_hook_response(b'{"cards": []}')
    assert response.cards == () and response.warnings == ()


def test_unknown_indicator_reads_as_warning_and_keeps_the_raw_value() -> None:
    response = parse_hook_response(_response(_card(indicator="hard-stop"), _card(uuid="c-2", indicator="critical")))
    assert [(c.indicator, c.indicator_raw) for c in response.cards] == [
        (Indicator.WARNING, "hard-stop"), (Indicator.CRITICAL, "critical")]
    assert response.warnings == ("$.cards[0].indicator 'hard-stop' is not info, warning or critical; read as warning",)


def test_both_topic_systems_give_the_card_type_and_others_do_not() -> None:
    response = parse_hook_response(_response(
        _card(source={"label": "A", "topic": {"system": NEW_TOPIC, "code": "coverage-info"}}),
        _card(source={"label": "B", "url": "https://b.example", "topic": {"system": OLD_TOPIC, "code": "guideline"}}),
        _card(source={"label": "C", "topic": {"system": "http://example.org/codes", "code": "123"}}),
        _card(source={"label": "D", "topic": {"code": "cost"}}),
    ))
    assert [c.card_type for c in response.cards] == ["coverage-info", "guideline", None, "cost"]
    assert "$.cards[3].source.topic has no system; its code is read as a CRD card type" in response.warnings
    assert response.cards[1].source.url == "https://b.example"
    assert response.cards[2].source.topic is not None and response.cards[2].source.topic.code == "123"
    assert any("cards[2].source.topic uses system" in w for w in response.warnings)
    assert set(CARD_TYPE_SYSTEMS) == {NEW_TOPIC, OLD_TOPIC}


def test_links_smart_launch_is_identifiable() -> None:
    links = [{"label": "Policy", "url": "https://payer.example/policy", "type": "absolute"},
             {"label": "Assess", "url": "https://app.example/launch", "type": "smart", "appContext": '{"q":"1"}'},
             {"label": "Odd", "url": "https://x.example", "type": "iframe"}]
    card = parse_hook_response(_response(_card(links=links))).cards[0]
    assert [(link.type, link.smart_launch) for link in card.links] == [
        ("absolute", False), ("smart", True), ("iframe", False)]
    assert card.links[1].app_context == '{"q":"1"}' and card.links[1].url == "https://app.example/launch"


def test_suggestions_and_selection_behavior() -> None:
    suggestions = [{"label": "Do it", "uuid": "s-1", "isRecommended": True,
                    "actions": [{"type": "create", "description": "add", "resource": {"resourceType": "Task"}}]},
                   {"label": "Other", "uuid": "s-2", "isRecommended": "yes", "actions": []}]
    response = parse_hook_response(_response(
        _card(suggestions=suggestions, selectionBehavior="at-most-one",
              overrideReasons=[{"system": "http://example.org/r", "code": "patient-refused", "display": "Refused"}]),
        _card(uuid="c-2", suggestions=suggestions[:1]),
        _card(uuid="c-3", suggestions=suggestions[:1], selectionBehavior="all"),
    ))
    first = response.cards[0]
    assert [(s.label, s.uuid, s.is_recommended) for s in first.suggestions] == [
        ("Do it", "s-1", True), ("Other", "s-2", None)]
    assert first.suggestions[0].actions[0].type == "create" and first.selection_behavior == "at-most-one"
    assert [(c.code, c.display) for c in first.override_reasons] == [("patient-refused", "Refused")]
    assert "$.cards[0].suggestions[1].isRecommended is a string, not a boolean; ignored" in response.warnings
    assert "$.cards[1].selectionBehavior is missing; it is required with suggestions" in response.warnings
    assert any(w.startswith("$.cards[2].selectionBehavior 'all' is unknown") for w in response.warnings)


def test_associated_resource_extension() -> None:
    card = _card(extension={"davinci-crd.associated-resource": [{"reference": "ServiceRequest/2468"},
                                                                {"reference": "DeviceRequest/1"}]})
    assert parse_hook_response(_response(card)).cards[0].associated_resources == (
        "ServiceRequest/2468", "DeviceRequest/1")


@pytest.mark.parametrize(
    ("action", "old_shape"),
    [
        ({"type": "delete", "resourceId": "MedicationRequest/2222"}, False),
        ({"type": "delete", "resource": "MedicationRequest/2222"}, True),
        ({"type": "delete", "resource": {"resourceType": "MedicationRequest", "id": "2222"}}, True),
        ({"type": "delete", "resourceId": ["MedicationRequest/2222"]}, False),
    ],
)
def test_every_delete_shape_normalises_to_resource_id(action: dict[str, Any], old_shape: bool) -> None:
    response = parse_hook_response(_response(actions=[action]))
    (parsed,) = response.system_actions
    assert parsed.type == "delete" and parsed.resource_id == "MedicationRequest/2222"
    assert parsed.target == "MedicationRequest/2222" and parsed.resource_type == "MedicationRequest"
    assert parsed.resource is None
    assert any("pre-2.0" in w for w in response.warnings) is old_shape


def test_action_oddities_are_warnings() -> None:
    response = parse_hook_response(_response(actions=[
        {"type": "create", "resource": {"resourceType": "Coverage", "id": "c"}},
        {"type": "patch", "resource": {"resourceType": "ServiceRequest", "id": "1"}},
        {"type": "update"},
        {"type": "delete"},
        "not an action",
    ]))
    assert [a.type for a in response.system_actions] == ["create", "patch", "update", "delete"]
    assert response.warnings == (
        "$.systemActions[4] is a string, not an object; ignored",
        "$.systemActions[0] creates a Coverage, which CRD 2.2 forbids; never apply it",
        "$.systemActions[1].type 'patch' is not create, update or delete",
        "$.systemActions[2]: update action without a resource",
        "$.systemActions[3] is a delete without resourceId",
    )


def test_if_none_exist_and_coverage_information_on_actions() -> None:
    info = {"url": EXT_COVERAGE_INFORMATION, "extension": [{"url": "covered", "valueCode": "covered"},
                                                             {"url": "pa-needed", "valueCode": "no-auth"}]}
    response = parse_hook_response(_response(actions=[
        {"type": "create", "resource": {"resourceType": "Questionnaire", "id": "q"},
         "extension": {"davinci-crd.if-none-exist": "url=http://example.org/Q&version=2"}},
        {"type": "update", "resource": {"resourceType": "ServiceRequest", "id": "1", "extension": [info]}},
    ]))
    create, update = response.system_actions
    assert create.if_none_exist == "url=http://example.org/Q&version=2" and create.coverage_information == ()
    assert [(i.covered, i.pa_needed, i.path) for i in update.coverage_information] == [
        ("covered", "no-auth", "$.systemActions[1].resource.extension[0]")]
    assert update.system_action and update.target == "ServiceRequest/1"


def test_action_resources_are_copies_of_the_input() -> None:
    body = _response(actions=[{"type": "update", "resource": {"resourceType": "ServiceRequest", "id": "1",
                                                              "status": "draft"}}])
    response = parse_hook_response(body)
    body["systemActions"][0]["resource"]["status"] = "active"
    resource = response.system_actions[0].resource
    assert resource is not None and resource["status"] == "draft"


def test_actions_lists_system_actions_first_then_suggestions() -> None:
    card = _card(suggestions=[{"label": "x", "uuid": "s", "actions": [{"type": "delete", "resourceId": "A/1"}]}],
                 selectionBehavior="any")
    response = parse_hook_response(_response(card, actions=[{"type": "delete", "resourceId": "B/2"}]))
    assert [(a.path, a.target, a.system_action) for a in response.actions()] == [
        ("$.systemActions[0]", "B/2", True), ("$.cards[0].suggestions[0].actions[0]", "A/1", False)]


def test_broken_cards_are_skipped_or_read_with_warnings() -> None:
    response = parse_hook_response({"cards": ["nope", {}], "unexpected": True})
    (card,) = response.cards
    assert card.summary is None and card.source.label is None and card.path == "$.cards[1]"
    assert (card.indicator, card.indicator_raw) == (Indicator.WARNING, None)
    assert response.warnings == (
        "$.cards[0] is a string, not an object; ignored",
        "$.cards[1].uuid is missing",
        "$.cards[1].summary is missing",
        "$.cards[1].indicator is missing; read as warning",
        "$.cards[1].source is missing (CDS Hooks requires it)",
    )

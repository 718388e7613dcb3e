"""Reading subscription notifications in every shape payers send (notes/pas.md §2.7)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from fhir_pa.errors import InvalidResponse
from fhir_pa.pas.decision import DecisionStatus
from fhir_pa.pas.notification import NotificationType, parse_notification
from tests.conftest import load_fixture

Json = dict[str, Any]


def _ig() -> Json:
    return load_fixture("pas", "Bundle-PASSubscriptionNotification.json")  # type: ignore[no-any-return]


def _parts(bundle: Json) -> list[Json]:
    status = bundle["entry"][0]["resource"]
    event = next(p for p in status["parameter"] if p["name"] == "notification-event")
    return event["part"]  # type: ignore[no-any-return]


def test_ig_example_focus_on_a_nested_response_bundle() -> None:
    notification = parse_notification(json.dumps(_ig()).encode())
    assert notification.type is NotificationType.EVENT
    assert notification.subscription == "Subscription/PASSubscriptionExample"
    assert notification.topic and notification.topic.endswith("PASSubscriptionTopic")
    [event] = notification.events
    assert event.event_number == 2 and event.focus == _ig()["entry"][1]["fullUrl"]
    assert event.response is not None and event.response["resourceType"] == "Bundle"
    assert event.decision is not None and event.decision.status is DecisionStatus.APPROVED
    assert event.decision.request_identifiers, "the ClaimResponse names the request it answers"


def test_older_inferno_example_flat_entries_are_rebuilt_claim_response_first() -> None:
    body = load_fixture("pas", "PAS_notification_example_full_resource.json")
    [event] = parse_notification(body).events
    assert event.event_number == 1 and len(event.additional_context) == 3
    assert event.response is not None
    kinds = [e["resource"]["resourceType"] for e in event.response["entry"]]
    assert kinds == ["ClaimResponse", "Patient", "Organization", "Organization"]
    assert event.decision is not None and event.decision.claim_response_full_url == event.focus


def test_reference_implementation_shape_nested_bundle_without_full_url() -> None:
    body = _ig()
    nested = body["entry"][1]
    claim_response_url = nested["resource"]["entry"][0]["fullUrl"]
    del nested["fullUrl"]
    for part in _parts(body):
        if part["name"] == "focus":
            part["valueReference"]["reference"] = claim_response_url
    [event] = parse_notification(body).events
    assert event.decision is not None and event.decision.status is DecisionStatus.APPROVED
    assert event.response is not None and event.response["entry"][0]["fullUrl"] == claim_response_url


def test_id_only_event_carries_no_decision() -> None:
    body = _ig()
    body["entry"] = body["entry"][:1]
    for part in _parts(body):
        if part["name"] == "focus":
            part["valueReference"]["reference"] = "https://payer.example/fhir/ClaimResponse/cr-9"
    [event] = parse_notification(body).events
    assert (event.decision, event.response, event.problem) == (None, None, None)
    assert event.focus == "https://payer.example/fhir/ClaimResponse/cr-9"


def test_two_events_each_get_their_own_decision() -> None:
    body = _ig()
    status = body["entry"][0]["resource"]
    denied = load_fixture("pas", "Bundle-RejectionResponseBundleExample.json")
    body["entry"].append({"fullUrl": "urn:uuid:1b2d6c1e-4f1c-4d57-9f43-3f1c8e2f0a11", "resource": denied})
    second = copy.deepcopy(next(p for p in status["parameter"] if p["name"] == "notification-event"))
    for part in second["part"]:
        if part["name"] == "event-number":
            part["valueString"] = "3"
        if part["name"] == "focus":
            part["valueReference"]["reference"] = "urn:uuid:1b2d6c1e-4f1c-4d57-9f43-3f1c8e2f0a11"
    status["parameter"].append(second)
    events = parse_notification(body).events
    assert [(e.event_number, e.decision.status if e.decision else None) for e in events] == [
        (2, DecisionStatus.APPROVED), (3, DecisionStatus.DENIED)]


def test_handshake_has_no_events_and_keeps_its_status() -> None:
    body = {"resourceType": "Bundle", "type": "history", "entry": [{"resource": {
        "resourceType": "Parameters", "parameter": [
            {"name": "subscription", "valueReference": {"reference": "Subscription/s1"}},
            {"name": "status", "valueCode": "requested"}, {"name": "type", "valueCode": "handshake"},
            {"name": "events-since-subscription-start", "valueString": "0"}]}}]}
    notification = parse_notification(body)
    assert (notification.type, notification.status, notification.events_since_start, notification.events) == (
        NotificationType.HANDSHAKE, "requested", 0, ())


def test_unreadable_response_is_a_problem_not_a_crash() -> None:
    body = _ig()
    body["entry"][1]["resource"] = {"resourceType": "Bundle", "type": "collection", "entry": []}
    [event] = parse_notification(body).events
    assert event.decision is None and event.response is None
    assert event.problem and "without a ClaimResponse" in event.problem


@pytest.mark.parametrize(("change", "where"), [
    (lambda b: b.update(resourceType="Parameters"), "resourceType"),
    (lambda b: b["entry"].pop(0), "Bundle.entry[0].resource"),
    (lambda b: b["entry"][0]["resource"]["parameter"][2].update(valueCode="surprise"), "name='type'"),
    (lambda b: _parts(b)[0].update(valueString="two"), "name='event-number'"),
])
def test_malformed_notifications_name_the_place(change: Any, where: str) -> None:
    body = _ig()
    change(body)
    with pytest.raises(InvalidResponse) as caught:
        parse_notification(body)
    assert caught.value.path is not None and where in caught.value.path


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]"])
def test_non_json_bodies_are_typed_errors(raw: bytes) -> None:
    with pytest.raises(InvalidResponse) as caught:
        parse_notification(raw)
    assert caught.value.path == "$"

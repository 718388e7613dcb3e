"""Sandbox Subscriptions and notifications on their own: acceptance rules, notification shapes, the scheduler."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest

from fhir_pa_sandbox.notify import SHAPES, event_notification, handshake
from fhir_pa_sandbox.scheduler import Scheduler
from fhir_pa_sandbox.subscriptions import FILTER_CRITERIA, SubscriptionRequest, read_subscription
from tests.conftest import load_fixture

Json = dict[str, Any]
SUB_URL = "http://payer.example/fhir/Subscription/s1"


# --- which Subscriptions are accepted -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["PAS_Subscription_example_v221_good.json",
                                  "Subscription-PASSubscriptionExample.json"])
def test_real_pas_subscriptions_are_accepted(name: str) -> None:
    accepted = read_subscription(load_fixture("pas", name))
    assert isinstance(accepted, SubscriptionRequest)
    assert accepted.content == "full-resource" and accepted.endpoint.startswith("http")
    assert accepted.filters and all(accepted.matches(value.rpartition("|")[2]) for value in accepted.filters)


def _good() -> Json:
    subscription: Json = load_fixture("pas", "PAS_Subscription_example_v221_good.json")
    return subscription


@pytest.mark.parametrize(("value", "sender", "hit"), [
    ("org-identifier=S1", "S1", True), ("ORGIDENTIFIER=S1", "S1", True),
    ("orgIdentifier=http://hl7.org/fhir/sid/us-npi|S1", "S1", True), ("org-identifier=S1,S2", "S2", True),
    ("org-identifier=S1", "S2", False), ("org-identifier=S1", None, False),
])
def test_filter_values_match_the_sending_system(value: str, sender: str | None, hit: bool) -> None:
    subscription = _good()
    subscription["_criteria"]["extension"][0]["valueString"] = value
    accepted = read_subscription(subscription)
    assert isinstance(accepted, SubscriptionRequest) and accepted.matches(sender) is hit


def _problems(subscription: Json) -> dict[str, str]:
    issues = read_subscription(subscription)
    assert isinstance(issues, list), "expected a refusal"
    return {str(issue.expression): issue.diagnostics for issue in issues}


def test_every_problem_is_reported_with_its_path() -> None:
    subscription = _good()
    subscription["criteria"] = "ClaimResponse?"
    subscription["_criteria"]["extension"].append({"url": FILTER_CRITERIA, "valueString": "org-identifier=X"})
    subscription["channel"].update({"type": "websocket", "endpoint": "mailto:a@b", "heartbeatPeriod": 30,
                                    "header": ["no colon here"]})
    subscription["channel"]["_payload"]["extension"][0]["valueCode"] = "empty"
    problems = _problems(subscription)
    assert set(problems) == {"Subscription.criteria", "Subscription.criteria.extension", "Subscription.channel.type",
                             "Subscription.channel.endpoint", "Subscription.channel.extension",
                             "Subscription.channel.payload.extension", "Subscription.channel.header[0]"}


def test_filter_must_be_org_identifier() -> None:
    subscription = _good()
    subscription["_criteria"]["extension"][0]["valueString"] = "identifier=123"
    assert "org-identifier" in _problems(subscription)["Subscription.criteria.extension.valueString"]


def test_headers_are_split_into_name_and_value() -> None:
    subscription = _good()
    subscription["channel"]["header"] = ["Authorization: Bearer abc", "X-Trace:  1 "]
    accepted = read_subscription(subscription)
    assert isinstance(accepted, SubscriptionRequest)
    assert accepted.headers == (("Authorization", "Bearer abc"), ("X-Trace", "1"))


# --- notification shapes --------------------------------------------------------------------------------


def _response() -> Json:
    bundle: Json = load_fixture("pas", "Bundle-ReferralAuthorizationResponseBundleExample.json")
    return bundle


def _status(notification: Json) -> dict[str, Json]:
    return {p["name"]: p for p in notification["entry"][0]["resource"]["parameter"]}


def _event(notification: Json) -> dict[str, Json]:
    return {p["name"]: p for p in _status(notification)["notification-event"]["part"]}


def test_pas_22_shape_matches_the_ig_notification_example() -> None:
    example = load_fixture("pas", "Bundle-PASSubscriptionNotification.json")
    ours = event_notification(SUB_URL, _response(), event_number=3)
    assert ours["type"] == example["type"] == "history"
    assert set(_status(ours)) >= {p["name"] for p in example["entry"][0]["resource"]["parameter"]}
    focus = _event(ours)["focus"]["valueReference"]["reference"]
    nested = ours["entry"][1]
    assert focus == nested["fullUrl"] == f"urn:uuid:{_response()['id']}"
    assert nested["resource"]["entry"][0]["resource"]["resourceType"] == "ClaimResponse"
    assert _event(ours)["event-number"]["valueString"] == "3"
    assert _status(ours)["events-since-subscription-start"]["valueString"] == "3"
    assert _status(ours)["subscription"]["valueReference"]["reference"] == SUB_URL


def test_flat_shape_matches_the_older_inferno_notification() -> None:
    example = load_fixture("pas", "PAS_notification_example_full_resource.json")
    ours = event_notification(SUB_URL, _response(), event_number=1, shape="flat-2.0.1")
    claim_url = _response()["entry"][0]["fullUrl"]
    assert _event(ours)["focus"]["valueReference"]["reference"] == claim_url
    assert [e["resource"]["resourceType"] for e in ours["entry"][1:]] == [
        e["resource"]["resourceType"] for e in _response()["entry"]]
    contexts = [p for p in _status(ours)["notification-event"]["part"] if p["name"] == "additional-context"]
    assert len(contexts) == len(_response()["entry"]) - 1
    example_event = {p["name"] for p in _status(example)["notification-event"]["part"]}
    assert {"event-number", "focus", "additional-context"} <= example_event


def test_ri_shape_nests_the_bundle_without_full_url_and_id_only_carries_nothing() -> None:
    ri = event_notification(SUB_URL, _response(), event_number=1, shape="ri")
    assert "fullUrl" not in ri["entry"][1] and ri["entry"][1]["resource"]["resourceType"] == "Bundle"
    assert _event(ri)["focus"]["valueReference"]["reference"] == _response()["entry"][0]["fullUrl"]
    bare = event_notification(SUB_URL, _response(), event_number=1, shape="id-only")
    assert len(bare["entry"]) == 1 and "focus" in _event(bare)


def test_building_does_not_touch_the_response_and_rejects_unknown_shapes() -> None:
    response = _response()
    kept = copy.deepcopy(response)
    for shape in SHAPES:
        event_notification(SUB_URL, response, event_number=1, shape=shape)
    assert response == kept
    with pytest.raises(ValueError, match="shape"):
        event_notification(SUB_URL, response, event_number=1, shape="xml")


def test_handshake_has_no_event() -> None:
    status = _status(handshake(SUB_URL))
    assert status["type"]["valueCode"] == "handshake" and "notification-event" not in status
    assert status["events-since-subscription-start"]["valueString"] == "0"


# --- the scheduler -----------------------------------------------------------------------------------------


def test_scheduler_runs_due_jobs_in_order_and_drops_the_rest_on_stop() -> None:
    scheduler = Scheduler()
    ran: list[str] = []
    done = threading.Event()
    scheduler.start()
    try:
        scheduler.at(0.05, lambda: ran.append("later"))
        scheduler.soon(lambda: ran.append("first"))
        scheduler.soon(lambda: ran.append("second"))
        scheduler.at(0.06, done.set)
        scheduler.at(3600, lambda: ran.append("never"))
        assert done.wait(5)
        assert ran == ["first", "second", "later"]
        assert scheduler.pending() == 1
    finally:
        scheduler.stop()
    assert not scheduler.running and scheduler.pending() == 0


def test_a_failing_job_does_not_stop_the_scheduler() -> None:
    scheduler = Scheduler()
    done = threading.Event()
    scheduler.start()
    try:
        def broken() -> None:
            raise RuntimeError("boom")

        scheduler.soon(broken)
        scheduler.soon(done.set)
        assert done.wait(5)
    finally:
        scheduler.stop()

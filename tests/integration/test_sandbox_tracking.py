"""The sandbox payer's pended-to-final life of a prior auth, over real loopback.

A tiny ``http.server`` receiver records what the payer POSTs (handshakes, event notifications). The payer here
decides pended requests only when a test calls ``POST /_sandbox/decide-pending`` (its pend delays are scaled
up by 100 000), except in the one test that checks the scheduler on its own.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from fhir_pa.auth.keys import SigningKey, public_jwks
from fhir_pa.config import Sender
from fhir_pa.pas import codes
from fhir_pa.pas.bundle import PasRequest, build_request_bundle
from fhir_pa.pas.order import PriorAuthOrder
from fhir_pa_sandbox.config import SandboxConfig
from fhir_pa_sandbox.server import SandboxServer
from fhir_pa_sandbox.subscriptions import FILTER_CRITERIA, PAYLOAD_CONTENT, TOPIC
from tests.integration.sandbox_helpers import get_token, wait_for

pytestmark = pytest.mark.integration
Json = dict[str, Any]
FHIR_JSON = "application/fhir+json"
SCOPES = ("system/Claim.c", "system/ClaimResponse.rs", "system/Subscription.cruds")
_ids = itertools.count()


# --- a notification receiver ------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Json

    @property
    def kind(self) -> str:
        return str(_param(self.body["entry"][0]["resource"], "type")["valueCode"])


@dataclass
class Receiver:
    base_url: str = ""
    received: list[Received] = field(default_factory=list)
    #: Path → HTTP status the receiver answers (200 unless set).
    status: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with receiver.lock:
                receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                  json.loads(body)))
            self.send_response(receiver.status.get(self.path, 200))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    recorded = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorded))
    recorded.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recorded
    server.shutdown()
    server.server_close()


# --- a payer, a client, requests ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def payer() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(pend_delay_scale=100_000)) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(payer: SandboxServer) -> Iterator[None]:
    yield
    httpx.post(f"{payer.base_url}/_sandbox/faults", json={"reset": True}).raise_for_status()


@pytest.fixture
def token(payer: SandboxServer, client_key: SigningKey) -> str:
    client_id = f"tracking-test-{next(_ids)}"
    payer.register_client(client_id, public_jwks(client_key), list(SCOPES))
    return get_token(payer, client_key, client_id, " ".join(SCOPES))


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON, "Accept": FHIR_JSON}


def _sender() -> str:
    return f"SYS{uuid.uuid4().hex[:10].upper()}"


def _request(make_order: Callable[..., PriorAuthOrder], sender: str, *codes_: str,
             **overrides: Any) -> PasRequest:
    services = [{"code": code, "service_date": "2026-12-01", "quantity": 1, "unit": "visit"} for code in codes_]
    order = make_order(order_id=f"track-{next(_ids)}", services=services, **overrides)
    return build_request_bundle(order, sender=Sender(interchange_sender_id=sender))


def _post(payer: SandboxServer, token: str, path: str, body: Json) -> httpx.Response:
    return httpx.post(f"{payer.fhir_base}/{path}", content=json.dumps(body), headers=_headers(token))


def _submit(payer: SandboxServer, token: str, bundle: Json) -> Json:
    response = _post(payer, token, "Claim/$submit", bundle)
    assert response.status_code == 200, response.text
    claim_response: Json = response.json()["entry"][0]["resource"]
    return claim_response


def _review_codes(claim_response: Json) -> dict[int, str]:
    found: dict[int, str] = {}
    for item in claim_response.get("item", []):
        review = item["adjudication"][0]["extension"][0]["extension"]
        code = next(p for p in review if p["url"] == codes.EXT_REVIEW_ACTION_CODE)
        found[item["itemSequence"]] = code["valueCodeableConcept"]["coding"][0]["code"]
    return found


def _param(parameters: Json, name: str) -> Json:
    return next(p for p in parameters["parameter"] if p["name"] == name)


def _event(notification: Json) -> dict[str, Json]:
    status = notification["entry"][0]["resource"]
    return {part["name"]: part for part in _param(status, "notification-event")["part"]}


def _stats(payer: SandboxServer) -> Json:
    response = httpx.get(f"{payer.base_url}/_sandbox/stats")
    response.raise_for_status()
    data: Json = response.json()
    return data


def _faults(payer: SandboxServer, **knobs: Any) -> None:
    httpx.post(f"{payer.base_url}/_sandbox/faults", json=knobs).raise_for_status()


def _decide_pending(payer: SandboxServer) -> int:
    response = httpx.post(f"{payer.base_url}/_sandbox/decide-pending")
    response.raise_for_status()
    decided: int = response.json()["decided"]
    return decided


def subscription(endpoint: str, sender: str, *, token_header: str | None = None,
                 content: str = "full-resource", filter_value: str | None = None) -> Json:
    channel: Json = {"type": "rest-hook", "endpoint": endpoint, "payload": FHIR_JSON,
                     "_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": content}]}}
    if token_header:
        channel["header"] = [f"Authorization: Bearer {token_header}"]
    return {"resourceType": "Subscription", "status": "requested", "reason": "PAS results", "criteria": TOPIC,
            "_criteria": {"extension": [{"url": FILTER_CRITERIA,
                                         "valueString": filter_value or f"org-identifier={sender}"}]},
            "channel": channel}


def _subscribe(payer: SandboxServer, token: str, body: Json) -> Json:
    response = _post(payer, token, "Subscription", body)
    assert response.status_code == 201, response.text
    created: Json = response.json()
    assert created["status"] == "requested"
    assert response.headers["location"].startswith(f"{payer.fhir_base}/Subscription/{created['id']}")
    return created


def _subscription_status(payer: SandboxServer, token: str, subscription_id: str) -> Json:
    response = httpx.get(f"{payer.fhir_base}/Subscription/{subscription_id}", headers=_headers(token))
    assert response.status_code == 200, response.text
    resource: Json = response.json()
    return resource


def _active(payer: SandboxServer, token: str, body: Json) -> Json:
    created = _subscribe(payer, token, body)
    wait_for(lambda: _subscription_status(payer, token, created["id"])["status"] != "requested")
    assert _subscription_status(payer, token, created["id"])["status"] == "active"
    return created


# --- pended → final by notification ------------------------------------------------------------------------


def test_pended_request_reaches_the_receiver_as_a1_after_decide_pending(
        payer: SandboxServer, token: str, receiver: Receiver, make_order: Callable[..., PriorAuthOrder]) -> None:
    sender, path = _sender(), f"/notify-{next(_ids)}"
    created = _active(payer, token, subscription(receiver.base_url + path, sender, token_header="secret-1"))
    handshakes = receiver.at(path)
    assert [r.kind for r in handshakes] == ["handshake"]
    assert handshakes[0].headers["authorization"] == "Bearer secret-1"
    before = _stats(payer)

    request = _request(make_order, sender, "27447")
    other = _request(make_order, _sender(), "27447")  # another sending system: not this subscriber's business
    first = _submit(payer, token, request.bundle)
    _submit(payer, token, other.bundle)
    assert _review_codes(first) == {1: "A4"}
    assert first["meta"]["versionId"] == "1"
    assert _decide_pending(payer) >= 2

    wait_for(lambda: len(receiver.at(path)) == 2)
    time.sleep(0.2)
    notes = receiver.at(path)
    assert [r.kind for r in notes] == ["handshake", "event-notification"], "only the matching request notified"
    event = notes[1]
    assert event.headers["authorization"] == "Bearer secret-1"
    assert event.headers["content-type"].startswith(FHIR_JSON)
    assert event.body["type"] == "history"
    status = event.body["entry"][0]["resource"]
    assert _param(status, "subscription")["valueReference"]["reference"].endswith(f"Subscription/{created['id']}")
    assert _param(status, "events-since-subscription-start")["valueString"] == "1"
    parts = _event(event.body)
    assert parts["event-number"]["valueString"] == "1"
    nested = event.body["entry"][1]
    assert parts["focus"]["valueReference"]["reference"] == nested["fullUrl"] == f"urn:uuid:{nested['resource']['id']}"
    claim_response = nested["resource"]["entry"][0]["resource"]
    assert claim_response["id"] == first["id"], "the same ClaimResponse, decided"
    assert _review_codes(claim_response) == {1: "A1"}
    assert claim_response["meta"]["versionId"] == "2" and claim_response.get("preAuthRef")

    after = _stats(payer)
    assert after["by_identifier"][request.bundle_identifier]["decided_later"] == 1
    assert after["notifications_sent"] - before["notifications_sent"] == 1
    assert after["decided_later"] - before["decided_later"] >= 2
    assert after["handshakes"] >= 1


def test_pended_then_denied_is_read_and_found_by_search_in_its_new_version(
        payer: SandboxServer, token: str, make_order: Callable[..., PriorAuthOrder]) -> None:
    request = _request(make_order, _sender(), "29881")
    first = _submit(payer, token, request.bundle)
    assert _review_codes(first) == {1: "A4"}
    _decide_pending(payer)
    read = httpx.get(f"{payer.fhir_base}/ClaimResponse/{first['id']}", headers=_headers(token))
    assert read.status_code == 200
    current = read.json()
    assert _review_codes(current) == {1: "A3"} and current["meta"]["versionId"] == "2"
    assert current["meta"]["lastUpdated"] >= first["meta"]["lastUpdated"]

    claim_key = request.claim_identifier
    for query in ({"request.identifier": claim_key}, {"identifier": claim_key}, {"_id": first["id"]},
                  {"request.identifier": claim_key.rpartition("|")[2]}):
        found = httpx.get(f"{payer.fhir_base}/ClaimResponse", params=query, headers=_headers(token))
        assert found.status_code == 200, found.text
        bundle = found.json()
        assert bundle["type"] == "searchset" and bundle["total"] == 1, query
        entry = bundle["entry"][0]
        assert entry["search"]["mode"] == "match"
        assert entry["fullUrl"] == f"{payer.fhir_base}/ClaimResponse/{first['id']}"
        assert entry["resource"]["meta"]["versionId"] == "2"
    none = httpx.get(f"{payer.fhir_base}/ClaimResponse", params={"request.identifier": "x|nothing"},
                     headers=_headers(token))
    assert none.json()["total"] == 0 and not none.json()["entry"]
    unknown = httpx.get(f"{payer.fhir_base}/ClaimResponse", params={"patient": "x"}, headers=_headers(token))
    assert unknown.status_code == 400 and unknown.json()["resourceType"] == "OperationOutcome"


def test_the_scheduler_decides_on_its_own_and_stops_with_the_server(
        client_key: SigningKey, make_order: Callable[..., PriorAuthOrder]) -> None:
    with SandboxServer(SandboxConfig(pend_delay_scale=0.01)) as quick:
        quick.register_client("quick", public_jwks(client_key), list(SCOPES))
        quick_token = get_token(quick, client_key, "quick", " ".join(SCOPES))
        first = _submit(quick, quick_token, _request(make_order, _sender(), "27447").bundle)

        def decided() -> bool:
            read = httpx.get(f"{quick.fhir_base}/ClaimResponse/{first['id']}", headers=_headers(quick_token))
            return _review_codes(read.json()) == {1: "A1"}

        wait_for(decided, timeout=5)
        scheduler = quick.state.scheduler
        assert scheduler.running
    assert not scheduler.running, "no scheduled work outlives the server"


# --- subscriptions that fail -------------------------------------------------------------------------------


def test_subscription_whose_endpoint_answers_500_ends_in_error_and_can_be_re_requested(
        payer: SandboxServer, token: str, receiver: Receiver) -> None:
    sender, path = _sender(), f"/broken-{next(_ids)}"
    receiver.status[path] = 500
    created = _subscribe(payer, token, subscription(receiver.base_url + path, sender))
    wait_for(lambda: _subscription_status(payer, token, created["id"])["status"] != "requested")
    failed = _subscription_status(payer, token, created["id"])
    assert failed["status"] == "error" and "500" in failed["error"]

    fixed = subscription(f"{receiver.base_url}/fixed-{next(_ids)}", sender)
    put = httpx.put(f"{payer.fhir_base}/Subscription/{created['id']}", content=json.dumps({**fixed,
                                                                                             "id": created["id"]}),
                    headers=_headers(token))
    assert put.status_code == 200 and put.json()["status"] == "requested"
    wait_for(lambda: _subscription_status(payer, token, created["id"])["status"] == "active")
    listed = httpx.get(f"{payer.fhir_base}/Subscription", headers=_headers(token)).json()
    assert listed["type"] == "searchset" and [e["resource"]["id"] for e in listed["entry"]] == [created["id"]]

    gone = httpx.delete(f"{payer.fhir_base}/Subscription/{created['id']}", headers=_headers(token))
    assert gone.status_code == 204
    assert httpx.get(f"{payer.fhir_base}/Subscription/{created['id']}", headers=_headers(token)).status_code == 404


def test_failed_event_delivery_sets_error_and_the_event_is_lost(
        payer: SandboxServer, token: str, receiver: Receiver, make_order: Callable[..., PriorAuthOrder]) -> None:
    sender, path = _sender(), f"/flaky-{next(_ids)}"
    created = _active(payer, token, subscription(receiver.base_url + path, sender))
    receiver.status[path] = 503
    before = _stats(payer)["notifications_failed"]
    _submit(payer, token, _request(make_order, sender, "27447").bundle)
    _decide_pending(payer)
    wait_for(lambda: _subscription_status(payer, token, created["id"])["status"] == "error")
    assert "503" in _subscription_status(payer, token, created["id"])["error"]
    assert len(receiver.at(path)) == 3, "the handshake, then two attempts at the event"
    assert _stats(payer)["notifications_failed"] == before + 1


def test_bad_subscription_is_refused_with_the_paths_of_its_problems(payer: SandboxServer, token: str) -> None:
    body = subscription("ftp://example.org/notify", "S1", filter_value="patient=123")
    body["channel"]["heartbeatPeriod"] = 60
    body["criteria"] = "ClaimResponse?status=active"
    response = _post(payer, token, "Subscription", body)
    assert response.status_code == 400
    expressions = {e for issue in response.json()["issue"] for e in issue["expression"]}
    assert {"Subscription.criteria", "Subscription.criteria.extension.valueString",
            "Subscription.channel.endpoint", "Subscription.channel.extension"} <= expressions


# --- $inquire ------------------------------------------------------------------------------------------------


def _inquiry(request: PasRequest, **claim_changes: Any) -> Json:
    """An Inquiry Request Bundle about ``request``: its Claim becomes a Claim Inquiry, the rest is kept."""
    bundle = copy.deepcopy(request.bundle)
    claim = bundle["entry"][0]["resource"]
    claim["meta"] = {"profile": [codes.profile("claim-inquiry")]}
    claim["identifier"] = [{"system": "urn:example:inquiry", "value": str(uuid.uuid4())}]
    claim.update(claim_changes)
    bundle["identifier"] = {"system": "urn:example:inquiry-bundle", "value": str(uuid.uuid4())}
    return bundle


def test_inquire_finds_the_case_and_404s_for_another_patient(
        payer: SandboxServer, token: str, make_order: Callable[..., PriorAuthOrder]) -> None:
    member, mrn = f"MEM-{uuid.uuid4().hex[:8]}", f"MRN-{uuid.uuid4().hex[:8]}"
    request = _request(make_order, _sender(), "27447", coverage={"member_id": member},
                       patient={"given": ["Ann"], "family": "Lee", "birth_date": "1970-01-02", "gender": "female",
                                "mrn": mrn})
    first = _submit(payer, token, request.bundle)
    pend_number = first["item"][0]["extension"][0]["valueString"]
    _decide_pending(payer)
    before = _stats(payer)["inquiries"]

    answer = _post(payer, token, "Claim/$inquire", _inquiry(request))
    assert answer.status_code == 200, answer.text
    parameters = answer.json()
    assert parameters["resourceType"] == "Parameters"
    assert [p["name"] for p in parameters["parameter"]] == ["return"]
    bundle = parameters["parameter"][0]["resource"]
    inquiry_response = bundle["entry"][0]["resource"]
    assert inquiry_response["id"] == first["id"]
    assert inquiry_response["meta"]["profile"] == [codes.profile("claiminquiryresponse")]
    assert _review_codes(inquiry_response) == {1: "A1"}, "the current decision, not the pended one"

    by_number = _inquiry(request, extension=[{"url": codes.extension("administrationReferenceNumber"),
                                              "valueString": pend_number}])
    assert _post(payer, token, "Claim/$inquire", by_number).status_code == 200, "an outdated number still finds it"
    wrong_number = _inquiry(request, extension=[{"url": codes.extension("authorizationNumber"),
                                                 "valueString": "AUTH-NOPE"}])
    assert _post(payer, token, "Claim/$inquire", wrong_number).status_code == 404

    _faults(payer, inquire_shape="bare")
    bare = _post(payer, token, "Claim/$inquire", _inquiry(request)).json()
    assert bare["resourceType"] == "Bundle" and bare["entry"][0]["resource"]["id"] == first["id"]
    _faults(payer, inquire_shape="responseBundle")
    named = _post(payer, token, "Claim/$inquire", _inquiry(request)).json()
    assert [p["name"] for p in named["parameter"]] == ["responseBundle"]

    stranger = _request(make_order, _sender(), "27447", coverage={"member_id": f"OTHER-{uuid.uuid4().hex[:8]}"},
                        patient={"given": ["Zed"], "family": "Other", "birth_date": "1980-05-05",
                                 "gender": "male", "mrn": f"MRN-{uuid.uuid4().hex[:8]}"})
    missing = _post(payer, token, "Claim/$inquire", _inquiry(stranger))
    assert missing.status_code == 404
    assert missing.json()["issue"][0]["code"] == "not-found"
    assert _stats(payer)["inquiries"] == before + 6


# --- updates and cancels ----------------------------------------------------------------------------------


def _update(prior_bundle: Json, *, cancel_items: tuple[int, ...] = (), cancel_all: bool = False) -> Json:
    """A hand-written Claim Update of the Claim in ``prior_bundle`` (entry[0]); the prior Claim goes in too."""
    bundle = copy.deepcopy(prior_bundle)
    prior_entry = bundle["entry"][0]
    prior = copy.deepcopy(prior_entry["resource"])
    claim = copy.deepcopy(prior)
    claim["meta"] = {"profile": [codes.CLAIM_UPDATE]}
    claim["identifier"] = [{"system": "urn:trnorg:fhir-pa", "value": f"UPD-{uuid.uuid4().hex[:12]}"}]
    claim["related"] = [{"claim": {"reference": prior_entry["fullUrl"]},
                         "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                                "ex-relatedclaimrelationship", "code": "prior"}]}}]
    cancel = {"valueCodeableConcept": {"coding": [{"system": codes.X12_CERTIFICATION_TYPE, "code": "3"}]}}
    for item in claim["item"]:
        # tracking markers are relative to the immediately prior Claim: earlier ones go
        item["extension"] = [e for e in item.get("extension", []) if not e["url"].endswith("infoChanged")]
        if item["sequence"] in cancel_items:
            item["modifierExtension"] = [{"url": f"{codes.SD}/modifierextension-infoCancelled",
                                          "valueBoolean": True}]
            item["extension"] = [e for e in item["extension"] if e["url"] != codes.EXT_CERTIFICATION_TYPE]
            item["extension"] += [{"url": codes.EXT_CERTIFICATION_TYPE, **cancel},
                                  {"url": codes.extension("infoChanged"), "valueCode": "changed"}]
    if cancel_all:
        claim["extension"] = [*claim.get("extension", []), {"url": codes.EXT_CERTIFICATION_TYPE, **cancel}]
    # The prior Claim stays in the Bundle (spec-65) under a new fullUrl; its own prior (the grandparent) does not.
    prior_url = f"urn:uuid:{uuid.uuid4()}"
    claim["related"][0]["claim"]["reference"] = prior_url
    bundle["entry"] = [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": claim}, *bundle["entry"][1:],
                       {"fullUrl": prior_url, "resource": prior}]
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"].get("resourceType") != "Claim"
                       or e["resource"] is claim or e["resource"] is prior]
    bundle["identifier"] = {"system": "urn:example:update", "value": str(uuid.uuid4())}
    return bundle


def test_update_cancels_one_item_then_the_whole_request(
        payer: SandboxServer, token: str, make_order: Callable[..., PriorAuthOrder]) -> None:
    request = _request(make_order, _sender(), "72148", "27447")
    first = _submit(payer, token, request.bundle)
    assert _review_codes(first) == {1: "A1", 2: "A4"}
    before = _stats(payer)

    one = _update(request.bundle, cancel_items=(2,))
    updated = _submit(payer, token, one)
    assert updated["id"] == first["id"] and updated["meta"]["versionId"] == "2"
    assert _review_codes(updated) == {1: "A1", 2: "C"}
    assert updated["item"][0]["adjudication"] == first["item"][0]["adjudication"], "unchanged item kept"
    assert _decide_pending(payer) == 0 or _review_codes(httpx.get(
        f"{payer.fhir_base}/ClaimResponse/{first['id']}", headers=_headers(token)).json())[2] == "C"

    everything = _update(one, cancel_all=True)
    cancelled = _submit(payer, token, everything)
    assert cancelled["id"] == first["id"] and cancelled["meta"]["versionId"] == "3"
    assert _review_codes(cancelled) == {1: "C", 2: "C"}

    again = _post(payer, token, "Claim/$submit", _update(everything))
    assert again.status_code == 400
    issue = again.json()["issue"][0]
    assert issue["code"] == "business-rule" and "cancelled" in issue["diagnostics"]
    after = _stats(payer)
    assert after["updates"] - before["updates"] == 2 and after["cancels"] - before["cancels"] == 2
    assert after["by_identifier"][request.bundle_identifier]["updates"] == 2


def test_update_of_a_denied_request_is_refused(payer: SandboxServer, token: str,
                                               make_order: Callable[..., PriorAuthOrder]) -> None:
    request = _request(make_order, _sender(), "97110")
    assert _review_codes(_submit(payer, token, request.bundle)) == {1: "A3"}
    refused = _post(payer, token, "Claim/$submit", _update(request.bundle))
    assert refused.status_code == 400
    assert "denied" in refused.json()["issue"][0]["diagnostics"]


# --- fault knobs ---------------------------------------------------------------------------------------------


def test_error_rate_faults_api_calls_and_shows_in_stats(payer: SandboxServer, token: str) -> None:
    before = _stats(payer)["faults_injected"]
    _faults(payer, error_rate=1.0, seed=7)
    answer = httpx.get(f"{payer.fhir_base}/ClaimResponse", params={"_id": "x"}, headers=_headers(token))
    assert answer.status_code == 503
    _faults(payer, error_rate=0.5, seed=11)
    first_run = [httpx.get(f"{payer.fhir_base}/ClaimResponse", params={"_id": "x"},
                           headers=_headers(token)).status_code for _ in range(12)]
    _faults(payer, seed=11)
    second_run = [httpx.get(f"{payer.fhir_base}/ClaimResponse", params={"_id": "x"},
                            headers=_headers(token)).status_code for _ in range(12)]
    assert first_run == second_run, "the same seed faults the same calls"
    assert set(first_run) == {200, 503}
    assert _stats(payer)["faults_injected"] == before + 1 + 2 * first_run.count(503)
    assert httpx.post(f"{payer.base_url}/_sandbox/faults", json={"error_rate": 2}).status_code == 400


def test_notification_knobs_drop_duplicate_reorder_and_reshape(
        payer: SandboxServer, token: str, receiver: Receiver, make_order: Callable[..., PriorAuthOrder]) -> None:
    sender, path = _sender(), f"/knobs-{next(_ids)}"
    _active(payer, token, subscription(receiver.base_url + path, sender))

    def events() -> list[Received]:
        return [r for r in receiver.at(path) if r.kind == "event-notification"]

    def decide_one(*codes_: str) -> None:
        for code in codes_:
            _submit(payer, token, _request(make_order, sender, code).bundle)
        _decide_pending(payer)

    before = _stats(payer)
    _faults(payer, drop_notifications=1)
    decide_one("27447")
    time.sleep(0.3)
    assert events() == []
    assert _stats(payer)["notifications_dropped"] == before["notifications_dropped"] + 1

    _faults(payer, duplicate_notifications=1)
    decide_one("27447")
    wait_for(lambda: len(events()) == 2)
    assert [_event(r.body)["event-number"]["valueString"] for r in events()] == ["2", "2"], "1 was dropped"

    _faults(payer, reorder_notifications=1)
    decide_one("27447", "29881")
    wait_for(lambda: len(events()) == 4)
    assert [_event(r.body)["event-number"]["valueString"] for r in events()[2:]] == ["4", "3"]

    _faults(payer, notification_shape="flat-2.0.1")
    decide_one("27447")
    wait_for(lambda: len(events()) == 5)
    flat = events()[4].body
    focus = _event(flat)["focus"]["valueReference"]["reference"]
    assert flat["entry"][1]["fullUrl"] == focus and flat["entry"][1]["resource"]["resourceType"] == "ClaimResponse"
    assert "additional-context" in _event(flat)
    after = _stats(payer)
    assert after["notifications_sent"] - before["notifications_sent"] == 5

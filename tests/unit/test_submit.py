"""The submit component alone, with respx standing in for the payer (the loopback path is in integration)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from fhir_pa.config import PayerConfig
from fhir_pa.errors import InvalidResponse, PayerRejected, PayerUnavailable, TransportError
from fhir_pa.fhir.retry import RetryPolicy
from fhir_pa.ledger.store import Ledger
from fhir_pa.pas.order import PriorAuthOrder
from fhir_pa.pas.submit import AsyncPasClient, PasClient

BASE = "https://payer.test/fhir"
SUBMIT = f"{BASE}/Claim/$submit"
REVIEW = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewAction"
REVIEW_CODE = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewActionCode"
MakeOrder = Callable[..., PriorAuthOrder]


class NoAuth(httpx.Auth):
    """The SMART flow is tested on its own; here only submit behaviour is under test."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = "Bearer test"
        yield request


def response_bundle(request_body: bytes, code: str = "A1") -> dict[str, Any]:
    sent = json.loads(request_body)
    claim = sent["entry"][0]
    items = [{"itemSequence": item["sequence"], "adjudication": [{
        "category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication",
                                 "code": "submitted"}]},
        "extension": [{"url": REVIEW, "extension": [{"url": REVIEW_CODE, "valueCodeableConcept": {
            "coding": [{"system": "https://codesystem.x12.org/005010/306", "code": code}]}},
            {"url": "number", "valueString": "AUTH-1"}]}]}]} for item in claim["resource"]["item"]]
    return {"resourceType": "Bundle", "type": "collection", "identifier": {"value": "r1"},
            "timestamp": "2026-11-22T00:00:00Z",
            "entry": [{"fullUrl": "urn:uuid:6f1c7d9e-0a4b-4c1e-9a51-1d3f3c2b1a00", "resource": {
                "resourceType": "ClaimResponse", "id": "cr1", "status": "active", "use": "preauthorization",
                "outcome": "complete", "preAuthRef": "PA-1", "request": {"reference": claim["fullUrl"]},
                "item": items}}]}


@pytest.fixture
def payer(tmp_path: Path) -> PayerConfig:
    return PayerConfig(fhir_base_url=BASE, client_id="c", key_path=tmp_path / "unused",
                       retry=RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0))


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.at_path(tmp_path / "ledger.sqlite")


@respx.mock
def test_approved_on_first_try_is_recorded(payer: PayerConfig, ledger: Ledger, make_order: MakeOrder) -> None:
    route = respx.post(SUBMIT).mock(side_effect=lambda req: httpx.Response(
        200, json=response_bundle(req.content), headers={"content-type": "application/fhir+json"}))
    with PasClient(payer, ledger=ledger, auth=NoAuth()) as client:
        result = client.submit(make_order())
    assert result.sent and result.decision.status.value == "approved"
    sent = route.calls[0].request
    assert sent.headers["content-type"] == "application/fhir+json"
    assert sent.headers["authorization"] == "Bearer test"
    record = ledger.get(result.record_id)
    assert record.state == "approved" and record.preauth_ref == "PA-1"
    assert record.request_body == sent.content
    assert ledger.exchanges(result.record_id)[0].response_body == route.calls[0].response.content


@respx.mock
def test_5xx_then_success_resends_the_same_bytes(payer: PayerConfig, ledger: Ledger,
                                                  make_order: MakeOrder) -> None:
    answers = iter([httpx.Response(503), httpx.Response(502)])

    def reply(req: httpx.Request) -> httpx.Response:
        return next(answers, None) or httpx.Response(200, json=response_bundle(req.content))

    route = respx.post(SUBMIT).mock(side_effect=reply)
    with PasClient(payer, ledger=ledger, auth=NoAuth()) as client:
        result = client.submit(make_order())
    bodies = {hashlib.sha256(call.request.content).hexdigest() for call in route.calls}
    assert route.call_count == 3 and len(bodies) == 1
    assert [e.status_code for e in ledger.exchanges(result.record_id)] == [503, 502, 200]
    assert result.decision.status.value == "approved"


@respx.mock
def test_4xx_is_final_and_never_retried(payer: PayerConfig, ledger: Ledger, make_order: MakeOrder) -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "required", "diagnostics": "Claim.insurer missing",
         "expression": ["Bundle.entry[0].resource.insurer"]}]}
    route = respx.post(SUBMIT).mock(return_value=httpx.Response(400, json=outcome))
    with PasClient(payer, ledger=ledger, auth=NoAuth()) as client, pytest.raises(PayerRejected) as err:
        client.submit(make_order())
    assert route.call_count == 1
    assert err.value.status == 400 and err.value.outcome == outcome
    assert err.value.path == "Bundle.entry[0].resource.insurer"
    record = ledger.records()[0]
    assert record.state == "rejected"
    # asking again must not send again: the refusal is on file
    with PasClient(payer, ledger=ledger, auth=NoAuth()) as client, pytest.raises(PayerRejected):
        client.submit(make_order())
    assert route.call_count == 1


@respx.mock
def test_all_5xx_gives_unavailable_and_a_later_call_resends_same_bytes(
        payer: PayerConfig, ledger: Ledger, make_order: MakeOrder) -> None:
    route = respx.post(SUBMIT).mock(return_value=httpx.Response(503))
    with PasClient(payer, ledger=ledger, auth=NoAuth()) as client, pytest.raises(PayerUnavailable):
        client.submit(make_order())
    assert route.call_count == 3
    record = ledger.records()[0]
    assert record.state == "failed" and record.error_code == "unavailable"
    route.mock(side_effect=lambda req: httpx.Response(200, json=response_bundle(req.content)))
    with PasClient(payer, ledger=ledger, auth=NoAuth()) as client:
        result = client.submit(make_order())
    assert result.record_id == record.id
    assert len({call.request.content for call in route.calls}) == 1


@respx.mock
def test_connection_refused_is_recorded_as_not_sent(payer: PayerConfig, ledger: Ledger,
                                                    make_order: MakeOrder) -> None:
    respx.post(SUBMIT).mock(side_effect=httpx.ConnectError("refused"))
    with PasClient(payer, ledger=ledger, auth=NoAuth()) as client, pytest.raises(TransportError):
        client.submit(make_order())
    record = ledger.records()[0]
    assert record.submitted_at is None, "nothing reached the payer, so the clock has not started"
    assert {e.delivery for e in ledger.exchanges(record.id)} == {"not-sent"}


@respx.mock
def test_truncated_json_is_kept_and_reported(payer: PayerConfig, ledger: Ledger, make_order: MakeOrder) -> None:
    respx.post(SUBMIT).mock(return_value=httpx.Response(200, content=b'{"resourceType": "Bundle", "ent'))
    with PasClient(payer, ledger=ledger, auth=NoAuth()) as client, pytest.raises(InvalidResponse):
        client.submit(make_order())
    record = ledger.records()[0]
    assert record.state == "invalid-response"
    assert ledger.exchanges(record.id)[0].response_body == b'{"resourceType": "Bundle", "ent'


@respx.mock
def test_decided_order_is_not_sent_again(payer: PayerConfig, ledger: Ledger, make_order: MakeOrder) -> None:
    route = respx.post(SUBMIT).mock(side_effect=lambda req: httpx.Response(200, json=response_bundle(req.content)))
    with PasClient(payer, ledger=ledger, auth=NoAuth()) as client:
        first = client.submit(make_order())
        second = client.submit(make_order())
    assert route.call_count == 1
    assert not second.sent and second.record_id == first.record_id
    assert second.decision.status == first.decision.status


@respx.mock
async def test_async_client_behaves_the_same(payer: PayerConfig, ledger: Ledger, make_order: MakeOrder) -> None:
    answers = iter([httpx.Response(500)])
    route = respx.post(SUBMIT).mock(side_effect=lambda req: next(answers, None) or httpx.Response(
        200, json=response_bundle(req.content, "A4")))
    async with AsyncPasClient(payer, ledger=ledger, auth=NoAuth()) as client:
        result = await client.submit(make_order())
    assert route.call_count == 2
    assert result.decision.status.value == "pended"
    assert ledger.get(result.record_id).state == "pended"


@respx.mock
def test_401_after_token_renewal_is_resent_not_rejected(payer: PayerConfig, ledger: Ledger,
                                                        make_order: MakeOrder) -> None:
    """A 401 means the payer did not process the request (its token expired again under load): resend, with the
    same bytes, and never settle the order as rejected for good."""
    answers = iter([httpx.Response(401), httpx.Response(401)])
    route = respx.post(SUBMIT).mock(side_effect=lambda req: next(answers, None) or httpx.Response(
        200, json=response_bundle(req.content)))
    with PasClient(payer, ledger=ledger, auth=NoAuth()) as client:
        result = client.submit(make_order())
    assert result.decision.status.value == "approved"
    assert len({call.request.content for call in route.calls}) == 1 and route.call_count == 3


@respx.mock
def test_401_on_every_attempt_leaves_the_order_resendable(payer: PayerConfig, ledger: Ledger,
                                                          make_order: MakeOrder) -> None:
    respx.post(SUBMIT).mock(return_value=httpx.Response(401))
    with PasClient(payer, ledger=ledger, auth=NoAuth()) as client, pytest.raises(PayerUnavailable):
        client.submit(make_order())
    record = ledger.records()[0]
    assert record.state == "failed" and record.attempts == 3

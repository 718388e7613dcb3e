"""The CRD client's own logic with respx standing in for the payer (loopback tests are in tests/integration)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import respx

from fhir_pa.auth.keys import generate_key
from fhir_pa.crd.checks import check_client_jwt
from fhir_pa.crd.client import CrdClient, CrdPayer, Ehr, TimeBudget
from fhir_pa.crd.hooks import order_select_context, order_sign_context
from fhir_pa.crd.identity import CdsClientIdentity

BASE = "https://payer.test/cds-services"
EHR = "https://ehr.test/fhir"
ORDER = {"resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
         "subject": {"reference": "Patient/p1"}}


def _discovery(versions: list[str]) -> dict[str, Any]:
    ext = {"davinci-crd.version": versions}
    return {"services": [{"id": "sign", "hook": "order-sign", "extension": ext},
                         {"id": "select", "hook": "order-select", "extension": ext}]}


def _client(budget: TimeBudget | None = None) -> tuple[CrdClient, CdsClientIdentity]:
    identity = CdsClientIdentity(generate_key("ES384"), "ehr-1")
    payer = CrdPayer(cds_base_url=BASE, identity=identity, budget=budget or TimeBudget(), late_answer_grace=0)
    return CrdClient(payer, Ehr(fhir_server=EHR, reachable=False)), identity


@respx.mock
def test_discovery_is_signed_for_its_own_url_and_the_newest_common_version_is_requested() -> None:
    discovery = respx.get(BASE).mock(return_value=httpx.Response(200, json=_discovery(["2.1", "2.2", "3.0"])))
    hook = respx.post(f"{BASE}/sign").mock(return_value=httpx.Response(200, json={"cards": []}))
    client, identity = _client()
    with client:
        client.call("order-sign", order_sign_context(user_id="Practitioner/u", patient_id="p1", draft_orders=[ORDER],
                                                     fhir_server=EHR))
    sent = discovery.calls.last.request
    assert check_client_jwt(sent.headers["authorization"], audience=BASE, jwks=identity.jwks(),
                            issuer="ehr-1") == []
    body = json.loads(hook.calls.last.request.content)
    assert body["extension"]["davinci-crd.requestedVersion"] == "2.2"
    assert "fhirServer" not in body and "fhirAuthorization" not in body, "an in-memory chart cannot be read back"


@respx.mock
def test_no_coverage_information_is_an_error_for_primary_hooks_and_a_warning_for_supporting_ones() -> None:
    respx.get(BASE).mock(return_value=httpx.Response(200, json=_discovery(["2.2"])))
    respx.post(f"{BASE}/sign").mock(return_value=httpx.Response(200, json={"cards": []}))
    respx.post(f"{BASE}/select").mock(return_value=httpx.Response(200, json={"cards": []}))
    client, _ = _client()
    with client:
        signed = client.call("order-sign", order_sign_context(user_id="Practitioner/u", patient_id="p1",
                                                              draft_orders=[ORDER], fhir_server=EHR))
        selected = client.call("order-select", order_select_context(
            user_id="Practitioner/u", patient_id="p1", draft_orders=[ORDER], selections=["ServiceRequest/sr-1"],
            fhir_server=EHR))
    assert [i.severity for i in signed.decisions[0].issues if i.rule == "hook-16"] == ["error"]
    assert [i.severity for i in selected.decisions[0].issues if i.rule == "hook-16"] == ["warning"]


@respx.mock
def test_a_payer_error_is_retried_once_on_fresh_discovery_then_reported() -> None:
    discovery = respx.get(BASE).mock(return_value=httpx.Response(200, json=_discovery(["2.2"])))
    respx.post(f"{BASE}/sign").mock(return_value=httpx.Response(500))
    client, _ = _client()
    with client:
        result = client.call("order-sign", order_sign_context(user_id="Practitioner/u", patient_id="p1",
                                                              draft_orders=[ORDER], fhir_server=EHR))
    assert discovery.call_count == 2 and not result.answered and "HTTP 500" in (result.problem or "")
    assert result.decisions[0].covered == "indeterminate" and result.status_code == 500


@respx.mock
def test_the_caller_gets_its_answer_at_the_budget_even_if_the_payer_hangs() -> None:
    respx.get(BASE).mock(return_value=httpx.Response(200, json=_discovery(["2.2"])))

    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(1.5)
        return httpx.Response(200, json={"cards": []})

    respx.post(f"{BASE}/sign").mock(side_effect=slow)
    client, _ = _client(TimeBudget(default=0.3, cold=0.3))
    started = time.monotonic()
    with client:
        result = client.call("order-sign", order_sign_context(user_id="Practitioner/u", patient_id="p1",
                                                              draft_orders=[ORDER], fhir_server=EHR))
        elapsed = time.monotonic() - started
    assert elapsed < 0.8 and not result.answered
    assert [r.code for r in result.decisions[0].reasons] == ["technical"]


@pytest.mark.parametrize("hook", ["order-dispatch"])
def test_a_hook_the_payer_does_not_offer_is_reported_not_raised(hook: str) -> None:
    with respx.mock:
        respx.get(BASE).mock(return_value=httpx.Response(200, json=_discovery(["2.2"])))
        client, _ = _client()
        with client:
            result = client.call(hook, {"patientId": "p1", "dispatchedOrders": ["ServiceRequest/sr-1"],
                                        "performer": "Organization/o"})
    assert not result.answered and "offers no order-dispatch" in (result.problem or "")
    assert [d.order for d in result.decisions] == ["ServiceRequest/sr-1"]

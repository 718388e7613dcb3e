"""CRD over real loopback: our CDS Hooks client against the sandbox payer's CRD service and its small EHR.

Every request the client sends is captured and held to the Inferno CRD client checks (JWT and body); the sandbox
runs the same checks and refuses what fails, so a green call is also a conformant one.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import fhir_pa_sandbox
from fhir_pa.auth.bearer import BearerToken
from fhir_pa.auth.keys import SigningKey, generate_key, public_jwks, write_key_pair
from fhir_pa.crd.apply import apply_coverage_information
from fhir_pa.crd.checks import check_client_jwt, check_hook_request
from fhir_pa.crd.client import AsyncCrdClient, CrdClient, CrdPayer, Ehr, TimeBudget
from fhir_pa.crd.coverage_info import EXT_COVERAGE_INFORMATION
from fhir_pa.crd.hooks import (
    appointment_book_context,
    encounter_context,
    order_dispatch_context,
    order_select_context,
    order_sign_context,
)
from fhir_pa.crd.identity import CdsClientIdentity
from fhir_pa.ledger.store import Ledger
from fhir_pa_sandbox.server import SandboxServer
from tests.integration.conftest import set_faults, stats


def count(sandbox: SandboxServer, name: str) -> int:
    value = stats(sandbox)[name]
    assert isinstance(value, int)
    return value

pytestmark = pytest.mark.integration
_ids = itertools.count()
EXE = str(Path(sys.executable).with_name("fhir-pa"))
CPT = "http://www.ama-assn.org/go/cpt"


@dataclass
class Setup:
    client: CrdClient
    identity: CdsClientIdentity
    sent: list[httpx.Request]
    ehr_base: str


def _order(code: str, patient: str = "pat-alex", order_id: str | None = None) -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "id": order_id or f"sr-{next(_ids)}", "status": "draft",
            "intent": "order", "code": {"coding": [{"system": CPT, "code": code}]},
            "subject": {"reference": f"Patient/{patient}"}, "requester": {"reference": "PractitionerRole/role-robin"},
            "authoredOn": "2026-12-01"}


def _context(setup: Setup, *orders: dict[str, Any], patient: str = "pat-alex",
             encounter: str | None = "enc-alex") -> dict[str, Any]:
    return order_sign_context(user_id="PractitionerRole/role-robin", patient_id=patient, encounter_id=encounter,
                              draft_orders=list(orders), fhir_server=setup.ehr_base)


def _setup(sandbox: SandboxServer, key: SigningKey, *, budget: TimeBudget | None = None,
           prefetch: bool = True, ledger: Ledger | None = None) -> Setup:
    iss = f"crd-client-{next(_ids)}"
    sandbox.register_client(iss, public_jwks(key), ["system/Claim.c"])
    ehr_base = f"{sandbox.base_url}/ehr/fhir"
    own = sandbox.state.ehr.issue(scopes=["user/*.rs"], patient_id=None, lifetime=600)
    sent: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [sent.append]})
    ehr = Ehr(fhir_server=ehr_base, http=httpx.Client() if prefetch else None, auth=BearerToken(own.access_token),
              token_issuer=sandbox.state.ehr)
    identity = CdsClientIdentity(key, iss)
    payer = CrdPayer(cds_base_url=f"{sandbox.base_url}/crd/cds-services", identity=identity,
                     budget=budget or TimeBudget())
    return Setup(CrdClient(payer, ehr, http=http, ledger=ledger), identity, sent, ehr_base)


@pytest.fixture
def crd(sandbox: SandboxServer, client_key: SigningKey) -> Iterator[Setup]:
    setup = _setup(sandbox, client_key)
    yield setup
    setup.client.close()


def _hook_posts(setup: Setup) -> list[httpx.Request]:
    return [r for r in setup.sent if r.method == "POST"]


def test_order_sign_with_full_prefetch_is_verified_decided_and_applied(crd: Setup, sandbox: SandboxServer) -> None:
    hooks, refused = count(sandbox, "crd_hooks"), count(sandbox, "crd_refused")
    order = _order("94640")
    result = crd.client.call("order-sign", _context(crd, order))
    assert result.answered, result.problem
    decision = result.decision(f"ServiceRequest/{order['id']}")
    assert decision is not None and decision.from_payer and not decision.issues
    assert (decision.covered, decision.pa_needed, decision.doc_needed) == ("covered", "auth-needed", ("clinical",))
    assert decision.questionnaires == ("http://fhir-pa.example/sandbox/Questionnaire/home-nebulizer|1.0.0",)
    assert any(link.smart_launch for card in result.cards for link in card.links)
    assert count(sandbox, "crd_hooks") == hooks + 1 and count(sandbox, "crd_refused") == refused

    [post] = _hook_posts(crd)
    body = json.loads(post.content)
    discovery = crd.client.discover()
    service = discovery.for_hook("order-sign")
    assert service is not None and post.url == discovery.url(service)
    assert check_hook_request(body, hook="order-sign", advertised_prefetch=service.prefetch) == []
    assert check_client_jwt(post.headers["authorization"], audience=str(post.url), jwks=crd.identity.jwks(),
                            issuer=crd.identity.issuer) == []
    prefetch = body["prefetch"]
    assert set(prefetch) == set(service.prefetch), "every advertised key was satisfied"
    assert [e["resource"]["id"] for e in prefetch["coverage"]["entry"]] == ["cov-alex"], \
        "only the primary active Coverage (not the secondary, not the cancelled one)"
    assert prefetch["patient"]["id"] == "pat-alex" and prefetch["encounter"]["id"] == "enc-alex"
    assert {e["resource"]["id"] for e in prefetch["practitioners"]["entry"]} == {"prac-robin"}
    assert prefetch["devices"] is None, "no DeviceRequest: null, and no empty _id= query was run"
    authorization = body["fhirAuthorization"]
    assert authorization["expires_in"] <= 30 and "user/Coverage.rs" in authorization["scope"].split()
    assert "user/*.rs" not in authorization["scope"], "the payer's token is narrowed to what it needs"

    edited = {**order, "note": [{"text": "edited while CRD was running"}]}
    applied = result.apply_to(edited)
    infos = [e for e in applied["extension"] if e["url"] == EXT_COVERAGE_INFORMATION]
    assert len(infos) == 1 and applied["note"] == edited["note"], "only the extension lands on the current order"
    assert result.apply_to(applied)["extension"] == applied["extension"], "re-applying replaces, never piles up"
    assert apply_coverage_information(order, result.response.system_actions[0] if result.response else {}) \
        ["extension"] == applied["extension"]


def test_payer_reads_back_into_the_ehr_when_prefetch_is_absent(sandbox: SandboxServer,
                                                               client_key: SigningKey) -> None:
    setup = _setup(sandbox, client_key, prefetch=False)
    before = count(sandbox, "crd_ehr_reads")
    with setup.client:
        result = setup.client.call("order-sign", _context(setup, _order("77067")))
    assert result.answered and "prefetch" not in json.loads(_hook_posts(setup)[0].content)
    [decision] = result.decisions
    assert (decision.pa_needed, decision.satisfied_pa_ids) == ("satisfied", ("SBX-PA-77067",))
    assert count(sandbox, "crd_ehr_reads") > before, "the payer used our fhirAuthorization token"


@pytest.mark.parametrize(("code", "patient", "covered", "pa", "doc"), [
    ("94660", "pat-jordan", "covered", "no-auth", ("clinical",)),
    ("72148", "pat-alex", "covered", "auth-needed", ()),
    ("11111", "pat-alex", "covered", "no-auth", ()),
    ("72148", "pat-casey", "not-covered", None, ()),
])
def test_decisions_follow_the_payer_rules(crd: Setup, code: str, patient: str, covered: str, pa: str | None,
                                          doc: tuple[str, ...]) -> None:
    result = crd.client.call("order-sign", _context(crd, _order(code, patient), patient=patient, encounter=None))
    [decision] = result.decisions
    assert (decision.covered, decision.pa_needed, decision.doc_needed) == (covered, pa, doc)
    assert decision.issues == ()


def test_each_call_has_a_fresh_hook_instance_and_discovery_is_cached(crd: Setup, sandbox: SandboxServer) -> None:
    instances_before, discovery_before = count(sandbox, "crd_hook_instances"), count(sandbox, "crd_discovery")
    for _ in range(3):
        assert crd.client.call("order-sign", _context(crd, _order("72148"))).answered
    instances = {json.loads(r.content)["hookInstance"] for r in _hook_posts(crd)}
    assert len(instances) == 3 and count(sandbox, "crd_hook_instances") == instances_before + 3
    assert count(sandbox, "crd_discovery") == discovery_before + 1
    tokens = {r.headers["authorization"] for r in crd.sent}
    assert len(tokens) == len(crd.sent), "a fresh JWT on every call, discovery included"


def test_discovery_is_refreshed_before_giving_up(crd: Setup, sandbox: SandboxServer) -> None:
    assert crd.client.call("order-sign", _context(crd, _order("72148"))).answered
    services = sandbox.state.crd_services["services"]
    original = [dict(s) for s in services]
    try:
        for service in services:
            service["id"] = f"{service['id']}-v2"
        result = crd.client.call("order-sign", _context(crd, _order("72148")))
    finally:
        sandbox.state.crd_services["services"] = original
    assert result.answered and result.service_id == "order-sign-crd-v2"
    statuses = [r.url.path for r in crd.sent]
    assert statuses.count("/crd/cds-services") == 2, "rediscovered once after the 404"


def test_a_slow_payer_gives_indeterminate_within_the_budget(sandbox: SandboxServer, client_key: SigningKey) -> None:
    setup = _setup(sandbox, client_key, budget=TimeBudget(default=1.0, cold=1.0))
    setup.client.discover()
    set_faults(sandbox, crd_latency_ms=4000)
    order = _order("94640")
    started = time.monotonic()
    with setup.client:
        result = setup.client.call("order-sign", _context(setup, order))
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"the caller waited {elapsed:.2f} s on a 1 s budget"
    assert not result.answered and result.problem and "1 s" in result.problem
    [decision] = result.decisions
    assert decision.order == f"ServiceRequest/{order['id']}" and not decision.from_payer
    assert (decision.covered, decision.pa_needed) == ("indeterminate", "indeterminate")
    assert [r.code for r in decision.reasons] == ["technical"]


def test_async_client_meets_the_budget_too(sandbox: SandboxServer, client_key: SigningKey) -> None:
    iss = f"crd-async-{next(_ids)}"
    sandbox.register_client(iss, public_jwks(client_key), ["system/Claim.c"])
    own = sandbox.state.ehr.issue(scopes=["user/*.rs"], patient_id=None, lifetime=600)
    ehr_base = f"{sandbox.base_url}/ehr/fhir"
    payer = CrdPayer(cds_base_url=f"{sandbox.base_url}/crd", identity=CdsClientIdentity(client_key, iss),
                     budget=TimeBudget(default=1.0, cold=3.0))

    async def run() -> tuple[bool, bool, float]:
        async with httpx.AsyncClient() as ehr_http, AsyncCrdClient(
                payer, Ehr(fhir_server=ehr_base, async_http=ehr_http, auth=BearerToken(own.access_token),
                           token_issuer=sandbox.state.ehr)) as client:
            context = order_sign_context(user_id="PractitionerRole/role-robin", patient_id="pat-alex",
                                         draft_orders=[_order("94640")], fhir_server=ehr_base)
            fast = await client.call("order-sign", context)
            set_faults(sandbox, crd_latency_ms=4000)
            started = time.monotonic()
            slow = await client.call("order-sign", context)
            return fast.answered and fast.decisions[0].pa_needed == "auth-needed", slow.answered, \
                time.monotonic() - started

    fast_ok, slow_answered, elapsed = asyncio.run(run())
    assert fast_ok and not slow_answered and elapsed < 1.5


def test_unregistered_key_is_refused_and_reported(sandbox: SandboxServer, crd: Setup) -> None:
    # The iss of a registered client, signed with a key the payer never saw.
    impostor = CdsClientIdentity(generate_key("ES384"), crd.identity.issuer)
    payer = CrdPayer(cds_base_url=crd.client.payer.cds_base_url, identity=impostor)
    with CrdClient(payer, Ehr(fhir_server=crd.ehr_base)) as client:
        result = client.call("order-sign", _context(crd, _order("72148")))
    assert not result.answered and result.problem and "401" in result.problem
    assert result.decisions[0].covered == "indeterminate"


def test_a_request_failing_the_crd_checks_is_refused_by_the_sandbox(crd: Setup) -> None:
    discovery = crd.client.discover()
    service = discovery.for_hook("order-sign")
    assert service is not None
    url = discovery.url(service)
    body = {"hook": "order-sign", "hookInstance": "not-a-uuid", "context": {"patientId": "Patient/1"},
            "prefetch": {"surprise": {}}}
    answer = httpx.post(url, json=body, headers={"Authorization": f"Bearer {crd.identity.jwt(url)}"})
    assert answer.status_code == 400
    paths = {(issue.get("expression") or [""])[0] for issue in answer.json()["issue"]}
    assert {"$.hookInstance", "$.context.patientId", "$.context.userId", "$.prefetch.surprise"} <= paths


def test_every_hook_passes_the_sandbox_checks_and_is_answered(crd: Setup) -> None:
    knee = "ServiceRequest/sr-alex-knee"
    base = crd.ehr_base
    user, patient = "PractitionerRole/role-robin", "pat-alex"
    order = _order("94640")
    appointment = {"resourceType": "Appointment", "id": "appt-1", "status": "proposed",
                   "basedOn": [{"reference": knee}],
                   "participant": [{"actor": {"reference": "Patient/pat-alex"}, "status": "needs-action"}]}
    calls = {
        "order-select": order_select_context(user_id=user, patient_id=patient, draft_orders=[order],
                                             selections=[f"ServiceRequest/{order['id']}"], fhir_server=base),
        "order-dispatch": order_dispatch_context(patient_id=patient, dispatched_orders=[knee],
                                                 performer="Organization/org-clinic"),
        "appointment-book": appointment_book_context(user_id=user, patient_id=patient, appointments=[appointment],
                                                     fhir_server=base, encounter_id="enc-alex"),
        "encounter-start": encounter_context(user_id=user, patient_id=patient, encounter_id="enc-alex"),
        "encounter-discharge": encounter_context(user_id=user, patient_id=patient, encounter_id="enc-alex"),
    }
    outcomes = {}
    for hook, context in calls.items():
        result = crd.client.call(hook, context)
        assert result.answered, (hook, result.problem)
        outcomes[hook] = [(d.order, d.pa_needed) for d in result.decisions]
    assert outcomes["order-select"] == [(f"ServiceRequest/{order['id']}", "auth-needed")]
    assert outcomes["order-dispatch"] == [(knee, "auth-needed")]
    assert outcomes["appointment-book"] == [(knee, "auth-needed")], "written to the ServiceRequest booked for"
    assert outcomes["encounter-start"] == outcomes["encounter-discharge"] == []
    posts = _hook_posts(crd)
    discovery = crd.client.discover()
    for post in posts:
        body = json.loads(post.content)
        service = discovery.for_hook(body["hook"])
        assert service is not None
        assert check_hook_request(body, hook=body["hook"], advertised_prefetch=service.prefetch) == []


def test_crd_check_command_against_the_sandbox(sandbox: SandboxServer, client_key: SigningKey,
                                               tmp_path: Path) -> None:
    iss = f"crd-cli-{next(_ids)}"
    sandbox.register_client(iss, public_jwks(client_key), ["system/Claim.c"])
    key_path, _ = write_key_pair(client_key, tmp_path / "keys")
    order_path = tmp_path / "order.json"
    order_path.write_text(json.dumps(_order("94660", "pat-jordan")))
    token = sandbox.state.ehr.issue(scopes=["user/*.rs"], patient_id=None, lifetime=600).access_token
    ledger_path = tmp_path / "ledger.sqlite"
    common = [EXE, "crd", "check", str(order_path), "--payer", f"{sandbox.base_url}/crd/cds-services",
              "--key", str(key_path), "--iss", iss, "--ledger", str(ledger_path), "--json"]
    remote = subprocess.run([*common, "--ehr", f"{sandbox.base_url}/ehr/fhir", "--ehr-token", token],
                            capture_output=True, text=True, timeout=60, check=False)
    assert remote.returncode == 0, remote.stderr
    view = json.loads(remote.stdout)
    assert [(o["covered"], o["pa_needed"], o["doc_needed"]) for o in view["orders"]] == [
        ("covered", "no-auth", ["clinical"])]
    assert view["cards"] and view["answered"] is True and view["prefetch_omitted"] == {}
    chart = Path(fhir_pa_sandbox.__file__).parent / "data" / "ehr" / "chart.json"
    local = subprocess.run([*common, "--chart", str(chart)], capture_output=True, text=True, timeout=60, check=False)
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout)["orders"][0]["pa_needed"] == "no-auth", "prefetch from the chart in memory"
    recorded = Ledger.at_path(ledger_path)
    assert [c.answered for c in recorded.hooks.all()] == [True, True], "both calls are in the ledger"
    recorded.close()
    (tmp_path / "bad.json").write_text("{not json")
    bad = subprocess.run([*common[:3], str(tmp_path / "bad.json"), *common[4:]], capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "not JSON" in bad.stderr


def test_every_call_and_a_late_answer_are_kept_in_the_ledger(sandbox: SandboxServer, client_key: SigningKey,
                                                             tmp_path: Path) -> None:
    ledger = Ledger.at_path(tmp_path / "ledger.sqlite")
    setup = _setup(sandbox, client_key, budget=TimeBudget(default=0.5, cold=2.0), ledger=ledger)
    with setup.client:
        first = setup.client.call("order-sign", _context(setup, _order("72148")))
        set_faults(sandbox, crd_latency_ms=1000)
        second = setup.client.call("order-sign", _context(setup, _order("72148")))
        assert first.answered and not second.answered
        deadline = time.monotonic() + 5
        while len(ledger.hooks.all()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    calls = ledger.hooks.all()
    assert [(c.answered, c.status_code) for c in calls] == [(True, 200), (False, None), (False, 200)]
    assert calls[0].request_body == _hook_posts(setup)[0].content and calls[0].patient_id == "pat-alex"
    assert calls[2].response_body and "after the time budget" in (calls[2].problem or ""), \
        "the late answer is not lost, only not used"
    assert ledger.hooks.all(hook_instance=first.hook_instance)[0].id == calls[0].id
    ledger.close()

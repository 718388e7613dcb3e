"""The whole path for one order against the loopback sandbox: CRD order-sign, DTR when the payer wants
documentation, PAS ``$submit`` and tracking, through :class:`Workflow` and :class:`AsyncWorkflow`.

Each test registers its own client and keeps its own ledger; the sandbox (and its EHR with ``pat-alex``) is the
session's. What the payer saw is read from its counters (``/_sandbox/stats``), what we did from the ledger's step
log (``ledger.steps``).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_pa.auth.bearer import BearerToken
from fhir_pa.auth.keys import SigningKey, public_jwks, write_key_pair
from fhir_pa.config import PAS_SCOPES, PayerConfig, PollSettings
from fhir_pa.crd.client import AsyncCrdClient, CrdClient, CrdPayer, Ehr
from fhir_pa.crd.identity import CdsClientIdentity
from fhir_pa.dtr import read_source, set_answers
from fhir_pa.dtr.client import AsyncDtrClient, DtrClient
from fhir_pa.dtr.package import PackageSet
from fhir_pa.fhir.retry import RetryPolicy
from fhir_pa.ledger.store import Ledger, LedgerRecord
from fhir_pa.pas.submit import AsyncPasClient, PasClient
from fhir_pa.workflow import (
    AsyncFormHook,
    AsyncWorkflow,
    FormHook,
    FormTask,
    Workflow,
    WorkflowOrder,
    WorkflowResult,
    WorkflowSettings,
    workflow_order,
)
from fhir_pa_sandbox.batch_orders import sample_order
from fhir_pa_sandbox.demo_dtr import MANUAL
from fhir_pa_sandbox.server import SandboxServer
from tests.integration.conftest import stats

pytestmark = pytest.mark.integration

Json = dict[str, Any]
POLL = PollSettings(first_delay=0.2, max_delay=0.5, rate_limit=50)
ALEX: Json = {"patient_id": "pat-alex", "user": "PractitionerRole/role-robin", "coverage_id": "cov-alex"}
USER = "PractitionerRole/role-robin"
NEBULIZER = "http://fhir-pa.example/sandbox/Questionnaire/home-nebulizer|1.0.0"
COVERAGE_INFORMATION = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
MISSING = ("last-exacerbation", "prior-treatments")
_ids = itertools.count()
_run = uuid.uuid4().hex[:8]


# -- the setup: a fresh client, a ledger, the EHR, and the three clients --------------------------------------------


@dataclass(frozen=True)
class Env:
    sandbox: SandboxServer
    payer: PayerConfig
    ledger: Ledger
    crd_payer: CrdPayer
    ehr_base: str
    ehr_token: str

    def steps(self, order_id: str) -> list[tuple[str, str]]:
        return [(s.step, s.outcome) for s in self.ledger.steps.for_order(payer=self.payer.base, order_id=order_id)]


@dataclass(frozen=True)
class SyncParts:
    env: Env
    pas: PasClient
    crd: CrdClient
    dtr: DtrClient
    ehr: Ehr

    def workflow(self, *, settings: WorkflowSettings | None = None, complete_form: FormHook | None = None,
                 dtr: DtrClient | bool = True) -> Workflow:
        """A workflow on these clients; ``dtr``: False for none, or another DTR client."""
        chosen = self.dtr if dtr is True else None if dtr is False else dtr
        return Workflow(self.pas, crd=self.crd, dtr=chosen, ehr=self.ehr,
                        settings=settings or WorkflowSettings(track_timeout=20), complete_form=complete_form)


@pytest.fixture
def env(sandbox: SandboxServer, client_key: SigningKey, tmp_path: Path) -> Iterator[Env]:
    client_id = f"wf-client-{_run}-{next(_ids)}"
    private_path, _ = write_key_pair(client_key, tmp_path / "keys")
    sandbox.register_client(client_id, public_jwks(client_key), list(PAS_SCOPES))
    payer = PayerConfig(fhir_base_url=sandbox.fhir_base, client_id=client_id, key_path=private_path,
                        retry=RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05), poll=POLL)
    token = sandbox.state.ehr.issue(scopes=["user/*.rs"], patient_id=None, lifetime=3600).access_token
    crd_payer = CrdPayer(cds_base_url=f"{sandbox.base_url}/crd/cds-services",
                         identity=CdsClientIdentity(client_key, client_id))
    ledger = Ledger.at_path(tmp_path / "ledger.sqlite")
    try:
        yield Env(sandbox, payer, ledger, crd_payer, f"{sandbox.base_url}/ehr/fhir", token)
    finally:
        ledger.close()


@pytest.fixture
def parts(env: Env) -> Iterator[SyncParts]:
    http = httpx.Client()
    ehr = Ehr(fhir_server=env.ehr_base, http=http, auth=BearerToken(env.ehr_token),
              token_issuer=env.sandbox.state.ehr)
    with PasClient(env.payer, ledger=env.ledger) as pas, DtrClient(env.payer) as dtr, \
            CrdClient(env.crd_payer, ehr) as crd:
        yield SyncParts(env, pas, crd, dtr, ehr)
    http.close()


@asynccontextmanager
async def async_workflow(env: Env, *, settings: WorkflowSettings | None = None,
                         complete_form: AsyncFormHook | None = None) -> AsyncIterator[AsyncWorkflow]:
    http = httpx.AsyncClient()
    ehr = Ehr(fhir_server=env.ehr_base, async_http=http, auth=BearerToken(env.ehr_token),
              token_issuer=env.sandbox.state.ehr)
    try:
        async with AsyncPasClient(env.payer, ledger=env.ledger) as pas, AsyncCrdClient(env.crd_payer, ehr) as crd:
            dtr = AsyncDtrClient(env.payer)
            try:
                yield AsyncWorkflow(pas, crd=crd, dtr=dtr, ehr=ehr,
                                    settings=settings or WorkflowSettings(track_timeout=20),
                                    complete_form=complete_form)
            finally:
                await dtr.http.aclose()
    finally:
        await http.aclose()


# -- orders and what to look at -------------------------------------------------------------------------------------


def order_data(*codes: str, ehr: Json | None = ALEX, order_id: str | None = None) -> Json:
    """One order line per code for the sandbox's Alex (member M500000, which the CRD rules know)."""
    order: Json = sample_order(0, "72148", prefix="wf", expedited=False, with_ehr=False)["order"]
    order["order_id"] = order_id or f"wf-{_run}-{next(_ids)}"
    order["services"] = [{"code": code, "code_system": "hcpcs" if code[0].isalpha() else "cpt", "quantity": 1,
                          "unit": "unit", "service_date": "2026-12-01"} for code in codes]
    return {"order": order, "ehr": ehr} if ehr is not None else {"order": order}


def order(*codes: str, ehr: Json | None = ALEX) -> WorkflowOrder:
    return workflow_order(order_data(*codes, ehr=ehr))


def received(sandbox: SandboxServer) -> int:
    value = stats(sandbox)["submissions_received"]
    assert isinstance(value, int)
    return value


def counter(sandbox: SandboxServer, name: str) -> int:
    value = stats(sandbox)[name]
    assert isinstance(value, int)
    return value


def seen_by_payer(sandbox: SandboxServer, record: LedgerRecord) -> Mapping[str, int]:
    by_identifier = stats(sandbox)["by_identifier"]
    assert isinstance(by_identifier, dict)
    counts: Mapping[str, int] = by_identifier[record.bundle_identifier]
    return counts


def resources(bundle: Json) -> list[Json]:
    return [e["resource"] for e in bundle.get("entry", [])]


def nested_qr_bundles(request_body: bytes) -> list[Json]:
    """The DTR QR Bundles nested in a stored PAS request Bundle."""
    sent = json.loads(request_body)
    return [r for r in resources(sent) if r["resourceType"] == "Bundle"]


def answers_by_link(node: Mapping[str, Any]) -> dict[str, list[Json]]:
    found: dict[str, list[Json]] = {}
    for item in node.get("item") or []:
        if item.get("answer"):
            found[item["linkId"]] = item["answer"]
        found.update(answers_by_link(item))
    return found


def clinician(task: FormTask) -> Json:
    """A person answers what the chart could not, as in the sandbox demo."""
    response: Json = dict(task.response)
    for link_id, values in MANUAL.items():
        response = set_answers(response, task.questionnaire, link_id, values, author=USER)
    return response


def _optional(node: Json) -> Json:
    out = copy.deepcopy(node)
    for item in out.get("item") or []:
        item.pop("required", None)
        item.update(_optional(item))
    return out


class ChartCompletesForms(DtrClient):
    """The payer's forms with nothing left that the chart cannot fill (no item required): a documentation case
    the chart completes on its own, which only the documentation policy decides about."""

    def packages(self, parameters: Mapping[str, Any]) -> PackageSet:
        found = super().packages(parameters)
        return replace(found, packages=tuple(replace(p, questionnaire=_optional(p.questionnaire))
                                             for p in found.packages))


# -- decided at once ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "outcome"), [("72148", "approved"), ("97110", "denied"), ("E0601", "modified")])
def test_order_decided_at_once(parts: SyncParts, code: str, outcome: str) -> None:
    env, item = parts.env, order(code)
    before = received(env.sandbox)
    result = parts.workflow().run(item)

    assert result.outcome == outcome and result.error_code is None and result.error is None
    assert result.pa_needed == "auth-needed" and result.crd_answered is True and result.sent is True
    assert result.record is not None and result.record.state == outcome
    assert result.decision is not None and result.decision.status.value == outcome
    assert result.forms == () and result.documentation == "none"
    assert env.steps(item.order_id) == [("crd", "answered"), ("pas", outcome)]
    assert received(env.sandbox) == before + 1
    assert seen_by_payer(env.sandbox, result.record)["received"] == 1
    # The CRD answer travels on the order into PAS (the payer's coverage-information extension).
    assert COVERAGE_INFORMATION.encode() in result.record.request_body
    row = result.row()
    assert row.outcome == outcome and row.pa_needed == "auth-needed" and row.record_id == result.record.id
    if outcome == "denied":
        assert row.denial_reasons and "not medically necessary" in row.denial_reasons[0]
    else:
        assert row.denial_reasons == ()


def test_two_lines_one_approved_one_denied_is_partial(parts: SyncParts) -> None:
    item = order("72148", "97110")
    result = parts.workflow().run(item)
    assert result.outcome == "partial"
    assert result.decision is not None
    assert sorted(i.status.value for i in result.decision.items) == ["approved", "denied"]
    assert parts.env.steps(item.order_id) == [("crd", "answered"), ("pas", "partial")]


@pytest.mark.parametrize(("code", "pa_needed"), [("77067", "satisfied"), ("94660", "no-auth")])
def test_crd_saying_no_prior_auth_is_needed_submits_nothing(parts: SyncParts, code: str, pa_needed: str) -> None:
    env, item = parts.env, order(code)
    before = stats(env.sandbox)
    result = parts.workflow().run(item)

    assert result.outcome == "no-auth-needed" and result.pa_needed == pa_needed and result.crd_answered is True
    assert result.record is None and result.sent is False and result.error_code is None
    assert env.ledger.find(payer=env.payer.base, order_id=item.order_id) is None
    after = stats(env.sandbox)
    assert after["submissions_received"] == before["submissions_received"]
    assert after["crd_hooks"] == before["crd_hooks"] + 1  # type: ignore[operator]
    # 94660's CRD answer names a form, but with no prior auth to ask for DTR is not started either.
    assert after["dtr_packages"] == before["dtr_packages"]
    steps = env.ledger.steps.for_order(payer=env.payer.base, order_id=item.order_id)
    assert [(s.step, s.outcome, s.detail) for s in steps] == [("crd", "answered", pa_needed),
                                                               ("pas", "not-needed", pa_needed)]
    assert result.row().outcome == "no-auth-needed"


# -- pended, then tracked to the final decision ---------------------------------------------------------------------


def test_pended_request_is_tracked_to_its_final_decision_by_run(parts: SyncParts) -> None:
    env, item = parts.env, order("27447")
    result = parts.workflow().run(item)

    assert result.outcome == "approved" and result.error_code is None
    assert result.record is not None and result.record.state == "approved"
    assert result.record.decision_channel == "poll-read" and result.record.polls >= 1
    assert result.decision is not None and result.decision.status.value == "approved"
    assert env.steps(item.order_id) == [("crd", "answered"), ("pas", "pended"), ("track", "approved")]
    assert seen_by_payer(env.sandbox, result.record)["decided_later"] == 1


def test_pended_request_left_pended_then_followed(parts: SyncParts) -> None:
    env, item = parts.env, order("29881")
    flow = parts.workflow()
    pended = flow.run(item, track=False)
    assert pended.outcome == "pended" and pended.record is not None and pended.record.state == "pended"
    assert env.steps(item.order_id) == [("crd", "answered"), ("pas", "pended")]

    final = flow.follow(pended)
    assert final.outcome == "denied" and final.record is not None and final.record.id == pended.record.id
    assert final.record.state == "denied" and final.decision is not None
    assert env.steps(item.order_id)[-1] == ("track", "denied")
    assert final.row().denial_reasons, "the pended-then-denied decision carries its reason"


def test_tracking_off_in_settings_leaves_the_request_pended(parts: SyncParts) -> None:
    item = order("27447")
    result = parts.workflow(settings=WorkflowSettings(track=False)).run(item)
    assert result.outcome == "pended" and result.record is not None and result.record.state == "pended"
    assert [s for s, _ in parts.env.steps(item.order_id)] == ["crd", "pas"]


# -- documentation --------------------------------------------------------------------------------------------------


def test_documentation_the_chart_cannot_complete_is_held_with_its_prefilled_form(parts: SyncParts) -> None:
    env, item = parts.env, order("94640")
    before = stats(env.sandbox)
    result = parts.workflow().run(item)  # default policy: "complete"

    assert result.outcome == "needs-documentation" and result.pa_needed == "auth-needed"
    assert result.record is None and result.sent is False and result.error_code is None
    assert result.steps == ("crd", "dtr", "hold") and result.documentation == "held"
    [form] = result.forms
    assert form.questionnaire == NEBULIZER and form.status == "held" and form.answers == form.auto > 0
    assert {path.split("'")[1] for path in form.missing} == set(MISSING)
    after = stats(env.sandbox)
    assert after["submissions_received"] == before["submissions_received"]
    assert after["dtr_packages"] == before["dtr_packages"] + 1  # type: ignore[operator]
    assert env.steps(item.order_id) == [("crd", "answered"), ("dtr", "held"), ("hold", "needs-documentation")]

    # The prefilled response waits in the step log for a person: chart answers in, the two manual ones not.
    hold = env.ledger.steps.latest(payer=env.payer.base, order_id=item.order_id, step="hold")
    assert hold is not None and hold.body is not None and hold.detail is not None and "2 item(s)" in hold.detail
    [stored] = json.loads(hold.body)
    assert stored["questionnaire"] == NEBULIZER
    response = stored["response"]
    assert response["resourceType"] == "QuestionnaireResponse"
    answered = answers_by_link(response)
    assert answered["patient-name"][0]["valueString"] and "diagnosis" in answered
    assert not set(MISSING) & set(answered)
    assert all(read_source(a) == "auto-client" for values in answered.values() for a in values)
    assert sum(len(v) for v in answered.values()) == form.answers


def test_hold_policy_holds_even_a_form_the_chart_completed(parts: SyncParts) -> None:
    env = parts.env
    with ChartCompletesForms(env.payer) as relaxed:
        # Under "complete" the chart's form goes with the PAS request on its own ...
        sent = order("94640")
        auto = parts.workflow(dtr=relaxed).run(sent)
        assert auto.outcome == "approved", (auto.error_code, auto.error)
        assert [f.status for f in auto.forms] == ["auto"] and auto.documentation == "auto"
        assert auto.record is not None and len(nested_qr_bundles(auto.record.request_body)) == 1
        assert env.steps(sent.order_id) == [("crd", "answered"), ("dtr", "completed"), ("pas", "approved")]

        # ... under "hold" the same kind of order waits for a person.
        before = received(env.sandbox)
        held = order("94640")
        result = parts.workflow(dtr=relaxed, settings=WorkflowSettings(documentation="hold")).run(held)
    assert result.outcome == "needs-documentation" and result.record is None
    assert [f.status for f in result.forms] == ["held"] and result.forms[0].missing == ()
    assert received(env.sandbox) == before
    assert env.steps(held.order_id) == [("crd", "answered"), ("dtr", "held"), ("hold", "needs-documentation")]

    # And the real form, which the chart cannot complete, is held under "hold" too.
    plain = order("94640")
    assert parts.workflow(settings=WorkflowSettings(documentation="hold")).run(plain).outcome == \
        "needs-documentation"


def test_a_person_completes_the_form_and_it_goes_with_the_pas_request(parts: SyncParts) -> None:
    env, item = parts.env, order("94640")
    tasks: list[FormTask] = []

    def person(task: FormTask) -> Json:
        tasks.append(task)
        return clinician(task)

    result = parts.workflow(complete_form=person).run(item)

    assert result.outcome == "approved" and result.sent is True, (result.error_code, result.error)
    [task] = tasks
    assert task.order_id == item.order_id and task.package.canonical == NEBULIZER
    assert {i.path.split("'")[1] for i in task.missing} == set(MISSING)
    [form] = result.forms
    assert form.status == "completed" and form.answers == form.auto + len(MANUAL) and form.missing == ()
    assert result.documentation == "completed"

    # The stored PAS request carries the DTR QR Bundle, nested, with the person's answers, and the Claim points at it.
    assert result.record is not None
    sent = json.loads(result.record.request_body)
    [nested] = nested_qr_bundles(result.record.request_body)
    assert nested["type"] == "collection"
    [qr] = resources(nested)
    assert qr["resourceType"] == "QuestionnaireResponse" and qr["status"] == "completed"
    assert qr["questionnaire"] == NEBULIZER
    answered = answers_by_link(qr)
    assert answered["last-exacerbation"][0]["valueDate"] == MANUAL["last-exacerbation"][0]["valueDate"]
    assert read_source(answered["prior-treatments"][0]) == "manual"
    assert read_source(answered["patient-name"][0]) == "auto-client"
    claim = next(r for r in resources(sent) if r["resourceType"] == "Claim")
    nested_url = next(e["fullUrl"] for e in sent["entry"] if e["resource"] is not None
                      and e["resource"]["resourceType"] == "Bundle")
    assert any(info.get("valueReference", {}).get("reference") == nested_url
               for info in claim.get("supportingInfo", []))

    # The whole path, in order, in the ledger.
    steps = env.ledger.steps.for_order(payer=env.payer.base, order_id=item.order_id)
    assert [(s.step, s.outcome) for s in steps] == [("crd", "answered"), ("dtr", "completed"), ("pas", "approved")]
    assert steps[1].detail == f"{NEBULIZER}: completed" and steps[2].detail == "sent"
    assert all(s.elapsed_ms is not None and s.elapsed_ms >= 0 for s in steps)


def test_a_person_declining_holds_the_order(parts: SyncParts) -> None:
    env, item = parts.env, order("94640")
    asked: list[str] = []

    def not_now(task: FormTask) -> None:
        asked.append(task.order_id)
        return None

    before = received(env.sandbox)
    result = parts.workflow(complete_form=not_now).run(item)
    assert asked == [item.order_id]
    assert result.outcome == "needs-documentation" and result.record is None and result.sent is False
    assert [f.status for f in result.forms] == ["held"]
    assert received(env.sandbox) == before
    assert env.ledger.find(payer=env.payer.base, order_id=item.order_id) is None
    hold = env.ledger.steps.latest(payer=env.payer.base, order_id=item.order_id, step="hold")
    assert hold is not None and hold.body is not None
    assert json.loads(hold.body)[0]["response"]["resourceType"] == "QuestionnaireResponse"


def test_full_step_log_of_a_documented_order_that_pends(parts: SyncParts) -> None:
    """Two lines: the nebulizer (documentation, a person finishes it) and a knee replacement (pended): every step
    of the path is in the ledger, in order, with its outcome."""
    env, item = parts.env, order("94640", "27447")
    result = parts.workflow(complete_form=clinician, settings=WorkflowSettings(track_timeout=20,
                                                                               worker="wf-tests")).run(item)
    assert result.outcome == "approved", (result.error_code, result.error)
    assert result.record is not None and result.record.state == "approved"
    assert len(nested_qr_bundles(result.record.request_body)) == 1

    steps = env.ledger.steps.for_order(payer=env.payer.base, order_id=item.order_id)
    assert [(s.step, s.outcome) for s in steps] == [
        ("crd", "answered"), ("dtr", "completed"), ("pas", "pended"), ("track", "approved")]
    crd, dtr, pas, track = steps
    assert crd.detail == "auth-needed" and crd.body is not None
    summary = json.loads(crd.body)
    assert summary["answered"] is True and summary["pa_needed"] == "auth-needed"
    assert summary["documentation"] == [[NEBULIZER]] and summary["hook_instance"]
    assert dtr.detail == f"{NEBULIZER}: completed"
    assert pas.detail == "sent"
    assert track.detail is not None and track.detail.startswith("via poll-read")
    assert all(s.worker == "wf-tests" and s.payer == env.payer.base for s in steps)
    assert [s.at for s in steps] == sorted(s.at for s in steps)
    assert track.elapsed_ms is not None and track.elapsed_ms > 500  # it waited for the payer's later decision


# -- straight to PAS, idempotence -----------------------------------------------------------------------------------


def test_an_order_without_an_ehr_part_goes_straight_to_pas(parts: SyncParts) -> None:
    env = parts.env
    hooks = counter(env.sandbox, "crd_hooks")
    item = order("72148", ehr=None)
    result = parts.workflow().run(item)
    assert result.outcome == "approved" and result.sent is True
    assert result.pa_needed is None and result.crd_answered is None
    assert env.steps(item.order_id) == [("pas", "approved")]
    assert result.record is not None and COVERAGE_INFORMATION.encode() not in result.record.request_body
    # A bare PriorAuthOrder is taken the same way.
    bare = order("97110", ehr=None).order
    assert parts.workflow().run(bare).outcome == "denied"
    assert env.steps(bare.order_id) == [("pas", "denied")]
    assert counter(env.sandbox, "crd_hooks") == hooks


def test_running_an_order_again_sends_nothing_and_asks_crd_nothing(parts: SyncParts) -> None:
    env, item = parts.env, order("27447")
    first = parts.workflow().run(item)
    assert first.outcome == "approved" and first.sent is True and first.record is not None
    before = stats(env.sandbox)

    # A new workflow on the same ledger, as after a restart.
    again = parts.workflow().run(item)
    assert again.outcome == "approved" and again.sent is False
    assert again.record is not None and again.record.id == first.record.id
    assert again.pa_needed is None and again.crd_answered is None  # CRD was not asked
    after = stats(env.sandbox)
    assert after["submissions_received"] == before["submissions_received"]
    assert after["crd_hooks"] == before["crd_hooks"]
    assert seen_by_payer(env.sandbox, first.record)["received"] == 1
    steps = env.ledger.steps.for_order(payer=env.payer.base, order_id=item.order_id)
    assert [(s.step, s.outcome) for s in steps] == [
        ("crd", "answered"), ("pas", "pended"), ("track", "approved"), ("pas", "approved")]
    assert steps[-1].detail == "answer on file"
    assert len([r for r in env.ledger.records() if r.order_id == item.order_id]) == 1


def test_a_documented_order_run_again_is_not_filled_or_submitted_again(parts: SyncParts) -> None:
    env, item = parts.env, order("94640")
    calls: list[str] = []

    def person(task: FormTask) -> Json:
        calls.append(task.order_id)
        return clinician(task)

    assert parts.workflow(complete_form=person).run(item).outcome == "approved"
    before = stats(env.sandbox)
    again = parts.workflow(complete_form=person).run(item)
    assert again.outcome == "approved" and again.sent is False and calls == [item.order_id]
    after = stats(env.sandbox)
    assert (after["submissions_received"], after["crd_hooks"], after["dtr_packages"]) == (
        before["submissions_received"], before["crd_hooks"], before["dtr_packages"])


# -- typed errors, never exceptions ---------------------------------------------------------------------------------


def test_payer_processing_error_ends_as_error_without_raising(parts: SyncParts) -> None:
    env, item = parts.env, order("99999")
    result = parts.workflow().run(item)
    assert result.outcome == "error" and result.sent is True
    assert result.record is not None and result.record.state == "error"
    assert result.decision is not None and result.decision.status.value == "error"
    assert [e.code for e in result.decision.errors] == ["AG"]
    assert env.steps(item.order_id) == [("crd", "answered"), ("pas", "error")]
    assert result.row().outcome == "error"


def test_payer_processing_error_carries_an_error_code(parts: SyncParts) -> None:
    result = parts.workflow().run(order("99999"))
    assert result.outcome == "error" and result.error_code == "payer-error"
    assert result.error is not None and "AG" in result.error
    assert result.row().error_code == "payer-error"


def test_a_coverage_the_ehr_does_not_hold_is_a_typed_input_error(parts: SyncParts) -> None:
    env = parts.env
    before = received(env.sandbox)
    item = order("94640", ehr={**ALEX, "coverage_id": "cov-nobody"})  # CRD asks for a form; DTR needs the Coverage
    result = parts.workflow().run(item)
    assert result.outcome == "error" and result.error_code == "input" and result.transient is False
    assert result.error is not None and "cov-nobody" in result.error and "ehr.coverage_id" in result.error
    assert result.record is None and result.sent is False
    assert received(env.sandbox) == before
    steps = env.ledger.steps.for_order(payer=env.payer.base, order_id=item.order_id)
    assert steps[-1].step == "error" and steps[-1].outcome == "input"
    assert result.row().error_code == "input"


def test_a_payer_crd_cannot_answer_still_gets_the_request_without_documentation(parts: SyncParts) -> None:
    """An EHR patient the CRD service cannot read: CRD is not heard, so nothing names a form, and the order goes
    to PAS as it is (the payer decides, not us)."""
    env = parts.env
    item = order("72148", ehr={**ALEX, "patient_id": "pat-nobody", "coverage_id": None})
    result = parts.workflow().run(item)
    assert result.crd_answered is False and result.forms == ()
    assert result.outcome == "approved" and result.sent is True
    assert env.steps(item.order_id) == [("crd", "not-heard"), ("pas", "approved")]


def test_documentation_needed_without_a_dtr_client_is_a_configuration_error(parts: SyncParts) -> None:
    item = order("94640")
    result = parts.workflow(dtr=False).run(item)
    assert result.outcome == "error" and result.error_code == "configuration" and result.record is None
    assert parts.env.steps(item.order_id) == [("crd", "answered"), ("error", "configuration")]


# -- the async twin -------------------------------------------------------------------------------------------------

#: code(s) → the outcome the sandbox gives; the same for the sync and the async workflow.
MIX: list[tuple[tuple[str, ...], str]] = [
    (("72148",), "approved"), (("97110",), "denied"), (("E0601",), "modified"), (("77067",), "no-auth-needed"),
    (("94660",), "no-auth-needed"), (("27447",), "approved"), (("94640",), "needs-documentation"),
    (("72148", "97110"), "partial"),
]


def _shape(env: Env, result: WorkflowResult) -> tuple[str, str | None, str, list[tuple[str, str]]]:
    return result.outcome, result.pa_needed, result.documentation, env.steps(result.order_id)


async def test_async_workflow_gives_the_same_outcomes_as_the_sync_one(env: Env, parts: SyncParts) -> None:
    sync_results = [parts.workflow().run(order(*codes)) for codes, _ in MIX]
    before = received(env.sandbox)
    async with async_workflow(env) as flow:
        async_results = await asyncio.gather(*(flow.run(order(*codes)) for codes, _ in MIX))
    assert [r.outcome for r in async_results] == [outcome for _, outcome in MIX]
    assert [_shape(env, r) for r in async_results] == [_shape(env, r) for r in sync_results]
    submitted = sum(1 for _, outcome in MIX if outcome not in ("no-auth-needed", "needs-documentation"))
    assert received(env.sandbox) == before + submitted


async def test_async_person_hook_completes_the_form(env: Env) -> None:
    tasks: list[FormTask] = []

    async def person(task: FormTask) -> Json:
        tasks.append(task)
        await asyncio.sleep(0)
        return clinician(task)

    item = order("94640")
    async with async_workflow(env, complete_form=person) as flow:
        result = await flow.run(item)
    assert result.outcome == "approved" and [t.order_id for t in tasks] == [item.order_id]
    assert result.record is not None
    [nested] = nested_qr_bundles(result.record.request_body)
    [qr] = resources(nested)
    assert qr["status"] == "completed" and "last-exacerbation" in answers_by_link(qr)
    assert env.steps(item.order_id) == [("crd", "answered"), ("dtr", "completed"), ("pas", "approved")]

    async def decline(task: FormTask) -> None:
        return None

    held = order("94640")
    async with async_workflow(env, complete_form=decline) as flow:
        assert (await flow.run(held)).outcome == "needs-documentation"


async def test_async_pended_then_followed_and_run_again(env: Env) -> None:
    item = order("27447")
    async with async_workflow(env) as flow:
        pended = await flow.run(item, track=False)
        assert pended.outcome == "pended"
        final = await flow.follow(pended)
        assert final.outcome == "approved" and final.record is not None and final.record.state == "approved"
        before = stats(env.sandbox)
        again = await flow.run(item)
    assert again.outcome == "approved" and again.sent is False and again.crd_answered is None
    after = stats(env.sandbox)
    assert (after["submissions_received"], after["crd_hooks"]) == (before["submissions_received"],
                                                                   before["crd_hooks"])
    assert env.steps(item.order_id) == [("crd", "answered"), ("pas", "pended"), ("track", "approved"),
                                        ("pas", "approved")]


async def test_async_typed_errors_are_results(env: Env) -> None:
    unknown = order("94640", ehr={**ALEX, "coverage_id": "cov-nobody"})
    failing = order("99999")
    async with async_workflow(env) as flow:
        results = await asyncio.gather(flow.run(unknown), flow.run(failing))
    assert [r.outcome for r in results] == ["error", "error"]
    assert results[0].error_code == "input" and results[0].record is None
    assert results[1].record is not None and results[1].record.state == "error"

"""CRD → DTR → PAS over real loopback: the payer says documentation is needed, we fetch its form, fill it from
the chart with its own CQL, a person finishes it, and it goes with the PAS request the payer then accepts."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_pa.auth.bearer import BearerToken
from fhir_pa.auth.keys import SigningKey, public_jwks, write_key_pair
from fhir_pa.config import PAS_SCOPES, PayerConfig
from fhir_pa.crd.client import CrdClient, CrdPayer, Ehr
from fhir_pa.crd.handoff import dtr_handoff
from fhir_pa.crd.hooks import order_sign_context
from fhir_pa.crd.identity import CdsClientIdentity
from fhir_pa.dtr import (
    DtrClient,
    QuestionnaireError,
    attach_documentation,
    ensure_complete,
    finish_response,
    parameters_from_handoff,
    populate,
    qr_bundle,
    read_source,
    set_answers,
    with_origin,
)
from fhir_pa.dtr.completion import IncompleteResponse
from fhir_pa.ledger.store import Ledger
from fhir_pa.pas.order import PriorAuthOrder
from fhir_pa.pas.submit import PasClient
from fhir_pa_sandbox.server import SandboxServer

pytestmark = pytest.mark.integration
_ids = itertools.count()
CPT = "http://www.ama-assn.org/go/cpt"
USER = "Practitioner/prac-robin"
NEBULIZER = "http://fhir-pa.example/sandbox/Questionnaire/home-nebulizer|1.0.0"


def _payer(sandbox: SandboxServer, key: SigningKey, tmp_path: Path) -> PayerConfig:
    client_id = f"dtr-{next(_ids)}"
    private, _ = write_key_pair(key, tmp_path / "keys")
    sandbox.register_client(client_id, public_jwks(key), list(PAS_SCOPES))
    return PayerConfig(fhir_base_url=sandbox.fhir_base, client_id=client_id, key_path=private)


def _chart(ehr: httpx.Client, base: str, patient: str) -> dict[str, Any]:
    """The patient's chart as the EHR serves it (what the form's libraries read)."""
    entries = [{"resource": ehr.get(f"{base}/Patient/{patient}").json()}]
    for query in (f"Condition?patient={patient}", f"Coverage?patient={patient}&status=active"):
        entries += ehr.get(f"{base}/{query}").json().get("entry", [])
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _items(node: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for item in node.get("item", []):
        found[item["linkId"]] = item
        found.update(_items(item))
    return found


def test_documentation_needed_by_crd_is_fetched_filled_completed_and_sent_with_pas(
        sandbox: SandboxServer, client_key: SigningKey, tmp_path: Path, make_order: Any) -> None:
    ehr_base = f"{sandbox.base_url}/ehr/fhir"
    token = sandbox.state.ehr.issue(scopes=["user/*.rs"], patient_id=None, lifetime=600).access_token
    ehr_http = httpx.Client(auth=BearerToken(token))
    iss = f"dtr-crd-{next(_ids)}"
    sandbox.register_client(iss, public_jwks(client_key), ["system/Claim.c"])
    order = {"resourceType": "ServiceRequest", "id": "sr-neb", "status": "draft", "intent": "order",
             "code": {"coding": [{"system": CPT, "code": "94640"}]}, "subject": {"reference": "Patient/pat-alex"},
             "requester": {"reference": "PractitionerRole/role-robin"}, "authoredOn": "2026-12-01"}

    # 1. CRD: prior auth and clinical documentation needed, with the form to fill.
    crd = CrdClient(CrdPayer(cds_base_url=f"{sandbox.base_url}/crd", identity=CdsClientIdentity(client_key, iss)),
                    Ehr(fhir_server=ehr_base, http=ehr_http, auth=BearerToken(token), token_issuer=sandbox.state.ehr))
    with crd:
        result = crd.call("order-sign", order_sign_context(user_id="PractitionerRole/role-robin",
                                                           patient_id="pat-alex", draft_orders=[order],
                                                           fhir_server=ehr_base))
    decision = result.decision("ServiceRequest/sr-neb")
    assert decision is not None and decision.pa_needed == "auth-needed"
    handoff = dtr_handoff(decision)
    assert handoff is not None and handoff.questionnaires == (NEBULIZER,) and handoff.coverage == "Coverage/cov-alex"

    # 2. DTR: the payer's package for that order, under CRD's coverage assertion.
    coverage = ehr_http.get(f"{ehr_base}/Coverage/cov-alex").json()
    payer = _payer(sandbox, client_key, tmp_path)
    with DtrClient(payer) as dtr:
        found = dtr.packages(parameters_from_handoff(handoff, coverage, [result.apply_to(order)]))
        assert [p.canonical for p in found.packages] == [NEBULIZER]
        package = found.packages[0]

        # 3. Prepopulation with the payer's CQL, on our engine, from the chart.
        chart = _chart(ehr_http, ehr_base, "pat-alex")
        chart["entry"].append({"resource": result.apply_to(order)})  # the draft order lives only in the EHR's memory
        filled = populate(package.bundle, chart,
                          launch={"patient": "Patient/pat-alex", "service_request": "ServiceRequest/sr-neb"})
        assert filled.errors == [], [e.one_line() for e in filled.errors]
        answers = _items(filled.response)
        assert answers["diagnosis"]["answer"][0]["valueCoding"]["code"] == "J44.9"
        assert read_source(answers["diagnosis"]["answer"][0]) == "auto-client"
        assert answers["patient-name"]["answer"], "the patient's name came from the chart"

        # Not complete yet: a person must answer what the chart cannot.
        with pytest.raises(IncompleteResponse) as missing:
            ensure_complete(filled.response, package.questionnaire)
        assert "last-exacerbation" in str(missing.value.issues)

        # 4. The person finishes the form.
        form = package.questionnaire
        response = set_answers(filled.response, form, "last-exacerbation", [{"valueDate": "2026-10-02"}], author=USER)
        response = set_answers(response, form, "prior-treatments", [{"valueCoding": {
            "system": "http://fhir-pa.example/sandbox/CodeSystem/respiratory-treatment", "code": "dpi"}}], author=USER)
        assert [i["linkId"] for i in _items(response)["clinical"]["item"]][-2:] == ["last-exacerbation",
                                                                                  "prior-treatments"]
        done = finish_response(response, coverage="Coverage/cov-alex", orders=["ServiceRequest/sr-neb"], author=USER)
        ensure_complete(done, package.questionnaire)
        assert done["status"] == "completed"

        # Errors during population are reported to the payer, never dropped.
        assert dtr.log_errors([NEBULIZER], [QuestionnaireError("demo: an expression failed", "diagnosis",
                                                               '"HomeNebulizerPrepopulation".Diagnosis')]) == 200
    assert sandbox.state.dtr_errors, "the payer received the error log"

    # 5. PAS: the completed documentation travels with the request, which the payer accepts.
    pas_order: PriorAuthOrder = make_order(order_id=f"neb-{next(_ids)}", services=[
        {"code": "94640", "service_date": "2026-12-03", "quantity": 1, "unit": "visit"}])
    with_docs = attach_documentation(pas_order, qr_bundle(done))
    ledger = Ledger.at_path(tmp_path / "ledger.sqlite")
    with PasClient(payer, ledger=ledger) as client:
        submitted = client.submit(with_docs)
    assert submitted.decision.status.value == "approved"
    sent = ledger.get(submitted.record_id).request_body
    assert b"additionalInformation" in sent and b"home-nebulizer" in sent
    ledger.close()
    ehr_http.close()


def test_adaptive_form_runs_to_completion_with_the_payer(sandbox: SandboxServer, client_key: SigningKey,
                                                        tmp_path: Path) -> None:
    payer = _payer(sandbox, client_key, tmp_path)
    coverage = {"resourceType": "Coverage", "id": "cov-alex", "status": "active",
                "beneficiary": {"reference": "Patient/pat-alex"},
                "identifier": [{"value": "M500000"}], "subscriberId": "M500000",
                "payor": [{"reference": "Organization/org-payer"}]}
    from fhir_pa.dtr import package_parameters

    asked: list[list[str]] = []

    def answer(response: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(response)
        questions = _items(response["contained"][0])
        asked.append(sorted(questions))
        values: dict[str, dict[str, Any]] = {"qualifying-test": {"valueBoolean": True},
                                             "spo2": {"valueDecimal": 86.0}, "test-date": {"valueDate": "2026-11-20"}}
        out["item"] = [{"linkId": link, "answer": [with_origin(values[link], "manual", author=USER)]}
                       for link in questions if link in values]
        return out

    with DtrClient(payer) as dtr:
        found = dtr.packages(package_parameters(coverage, questionnaires=[
            "http://fhir-pa.example/sandbox/Questionnaire/home-oxygen-adaptive|1.0.0"]))
        [package] = found.packages
        assert package.adaptive and package.response is not None
        result = dtr.next_questions(package.response, answer)
    assert result.response["status"] == "completed" and result.rounds >= 2
    assert asked[0] == ["qualifying-test"] and "spo2" in asked[-1], "the payer asked more after the first answer"
    assert result.coverage_information, "the payer's coverage decision came back on the response"

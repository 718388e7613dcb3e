"""The sandbox payer's DTR operations over real loopback, with raw httpx (no fhir-pa client in between)."""

from __future__ import annotations

import base64
import copy
import itertools
import json
from typing import Any

import httpx
import pytest

from fhir_pa.auth.keys import SigningKey
from fhir_pa.dtr.elm import ElmEngine, load_sources
from fhir_pa_sandbox.config import packaged_data
from fhir_pa_sandbox.server import SandboxServer
from tests.integration.sandbox_helpers import get_token, new_client
from tests.unit.test_sandbox_dtr_content import patient_bundle

pytestmark = pytest.mark.integration
Json = dict[str, Any]
FHIR_JSON = "application/fhir+json"
BASE = "http://fhir-pa.example/sandbox/Questionnaire"
NEB, CPAP, ADAPTIVE = (f"{BASE}/{name}|1.0.0" for name in ("home-nebulizer", "cpap-management",
                                                             "home-oxygen-adaptive"))
DTR = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition"
CRD_TEMP = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
COVERAGE_INFORMATION = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
_ids = itertools.count()


def _chart(resource_type: str, resource_id: str) -> Json:
    chart = json.loads(packaged_data("ehr/chart.json").read_text(encoding="utf-8"))
    found: Json = next(e["resource"] for e in chart["entry"]
                       if e["resource"]["resourceType"] == resource_type and e["resource"]["id"] == resource_id)
    return found


def _order(cpt: str, patient: str = "pat-alex") -> Json:
    return {"resourceType": "ServiceRequest", "id": f"sr-{cpt}-{next(_ids)}", "status": "draft", "intent": "order",
            "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": cpt}]},
            "subject": {"reference": f"Patient/{patient}"}}


def _params(*parts: Json) -> Json:
    return {"resourceType": "Parameters", "parameter": list(parts)}


def _coverage() -> Json:
    return {"name": "coverage", "resource": _chart("Coverage", "cov-alex")}


@pytest.fixture(scope="module")
def token(sandbox: SandboxServer, client_key: SigningKey) -> str:
    client = new_client(sandbox, client_key, ("system/Questionnaire.rs", "system/ClaimResponse.r"))
    return get_token(sandbox, client_key, client, "system/Questionnaire.r")


def _post(sandbox: SandboxServer, operation: str, body: Json, token: str | None) -> httpx.Response:
    headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{sandbox.fhir_base}/Questionnaire/${operation}", json=body, headers=headers)


def _package(sandbox: SandboxServer, token: str, *parts: Json) -> Json:
    answer = _post(sandbox, "questionnaire-package", _params(_coverage(), *parts), token)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith(FHIR_JSON)
    body: Json = answer.json()
    return body


def _bundles(answer: Json) -> list[Json]:
    return [p["resource"] for p in answer.get("parameter", []) if p["name"] == "packagebundle"]


def _outcome(answer: Json) -> list[Json]:
    return [i for p in answer.get("parameter", []) if p["name"] == "outcome" for i in p["resource"]["issue"]]


def _resources(bundle: Json, kind: str) -> list[Json]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


# --- $questionnaire-package -------------------------------------------------------------------------


def test_package_by_order_code_is_complete_and_prefills_alexs_copd(sandbox: SandboxServer, token: str) -> None:
    before = sandbox.stats()["dtr_packages"]
    order = _order("94640")
    answer = _package(sandbox, token, {"name": "order", "resource": order})
    (bundle,) = _bundles(answer)
    assert bundle["type"] == "collection" and _outcome(answer) == []
    first = bundle["entry"][0]["resource"]
    assert first["resourceType"] == "Questionnaire" and f"{first['url']}|{first['version']}" == NEB
    (qr,) = _resources(bundle, "QuestionnaireResponse")
    assert qr["status"] == "in-progress" and qr["questionnaire"] == NEB
    assert qr["subject"] == {"reference": "Patient/pat-alex"}
    extensions = {e["url"]: e.get("valueReference", e.get("valueCodeableConcept")) for e in qr["extension"]}
    assert extensions == {f"{DTR}/qr-coverage": {"reference": "Coverage/cov-alex"},
                          f"{DTR}/qr-context": {"reference": f"ServiceRequest/{order['id']}"},
                          f"{DTR}/intendedUse": {"coding": [{"system": CRD_TEMP, "code": "withpa"}]}}
    libraries = _resources(bundle, "Library")
    assert {lib["name"] for lib in libraries} == {"HomeNebulizerPrepopulation", "SandboxPatientInfo"}
    assert all({c["contentType"] for c in lib["content"]} == {"text/cql", "application/elm+json"} for lib in libraries)
    assert all(vs["expansion"]["contains"] for vs in _resources(bundle, "ValueSet"))
    assert len(_resources(bundle, "ValueSet")) == 2
    # what a DTR client does next: run the package's ELM on the patient's chart
    (result,) = ElmEngine(load_sources(answer)).evaluate(patient_bundle("pat-alex"), now="2026-12-01T12:00:00Z")
    assert result.results["PrimaryDiagnosis"].json["code"] == "J44.9"
    assert sandbox.stats()["dtr_packages"] == before + 1


def test_orders_pick_forms_by_the_crd_rules(sandbox: SandboxServer, token: str) -> None:
    answer = _package(sandbox, token, *({"name": "order", "resource": _order(c)} for c in ("94660", "94640", "27447")))
    assert [b["entry"][0]["resource"]["id"] for b in _bundles(answer)] == ["cpap-management", "home-nebulizer"]
    (issue,) = _outcome(answer)
    assert issue["severity"] == "information" and "27447" in issue["diagnostics"]


def test_package_by_canonical_and_unknown_canonical_warning(sandbox: SandboxServer, token: str) -> None:
    unknown = f"{BASE}/no-such-form|1.0.0"
    answer = _package(sandbox, token, {"name": "questionnaire", "valueCanonical": CPAP},
                      {"name": "questionnaire", "valueCanonical": unknown})
    (bundle,) = _bundles(answer)
    assert bundle["entry"][0]["resource"]["id"] == "cpap-management"
    qr = _resources(bundle, "QuestionnaireResponse")[0]
    assert [e["url"] for e in qr["extension"]] == [f"{DTR}/qr-coverage", f"{DTR}/intendedUse"]  # no qr-context
    (issue,) = _outcome(answer)
    assert issue["severity"] == "warning" and issue["code"] == "not-found" and unknown in issue["diagnostics"]


def test_changedsince_after_the_content_date_returns_nothing(sandbox: SandboxServer, token: str) -> None:
    order = {"name": "order", "resource": _order("94640")}
    unchanged = _package(sandbox, token, order, {"name": "changedsince", "valueInstant": "2026-11-20T00:00:00Z"})
    assert unchanged == {"resourceType": "Parameters"}
    changed = _package(sandbox, token, order, {"name": "changedsince", "valueInstant": "2026-11-01T00:00:00Z"})
    assert len(_bundles(changed)) == 1


def test_context_only_and_unknown_member(sandbox: SandboxServer, token: str) -> None:
    answer = _package(sandbox, token, {"name": "context", "valueString": "SBX-0123"})
    assert _bundles(answer) == [] and "SBX-0123" in _outcome(answer)[0]["diagnostics"]
    stranger = _params({"name": "coverage", "resource": _chart("Coverage", "cov-casey")},
                       {"name": "questionnaire", "valueCanonical": NEB})
    refused = _post(sandbox, "questionnaire-package", stranger, token)
    assert refused.status_code == 400 and refused.json()["issue"][0]["code"] == "not-found"


@pytest.mark.parametrize(("parts", "names"), [
    ([{"name": "order", "resource": {"resourceType": "ServiceRequest", "id": "x"}}], "coverage"),
    ([_coverage()], "parameter"),
    ([_coverage(), _coverage(), {"name": "context", "valueString": "A"}], "coverage"),
    ([_coverage(), {"name": "order", "resource": {"resourceType": "Patient", "id": "p"}}], "order"),
    ([_coverage(), {"name": "questionnaire", "valueBoolean": True}], "questionnaire"),
    ([_coverage(), {"name": "context", "valueString": "A"}, {"name": "changedsince", "valueInstant": "soon"}],
     "changedsince"),
])
def test_bad_package_input_is_400_naming_the_parameter(sandbox: SandboxServer, token: str, parts: list[Json],
                                                       names: str) -> None:
    answer = _post(sandbox, "questionnaire-package", _params(*parts), token)
    assert answer.status_code == 400
    (issue,) = answer.json()["issue"]
    assert names in issue["expression"][0]
    if names == "parameter":
        assert "dtr-1" in issue["diagnostics"]


def test_package_needs_a_token_with_a_questionnaire_or_claim_scope(sandbox: SandboxServer,
                                                                   client_key: SigningKey) -> None:
    body = _params(_coverage(), {"name": "questionnaire", "valueCanonical": NEB})
    assert _post(sandbox, "questionnaire-package", body, None).status_code == 401
    client = new_client(sandbox, client_key, ("system/Claim.c", "system/ClaimResponse.r"))
    assert _post(sandbox, "questionnaire-package", body,
                 get_token(sandbox, client_key, client, "system/ClaimResponse.r")).status_code == 403
    assert _post(sandbox, "questionnaire-package", body,
                 get_token(sandbox, client_key, client, "system/Claim.c")).status_code == 200


def test_package_honours_the_fault_knobs(sandbox: SandboxServer, token: str) -> None:
    sandbox.set_faults(fail_next=1, status=503)
    body = _params(_coverage(), {"name": "questionnaire", "valueCanonical": NEB})
    failed = _post(sandbox, "questionnaire-package", body, token)
    assert failed.status_code == 503 and failed.content == b""
    assert _post(sandbox, "questionnaire-package", body, token).status_code == 200


# --- $next-question ---------------------------------------------------------------------------------


def _adaptive_draft(sandbox: SandboxServer, token: str) -> Json:
    (bundle,) = _bundles(_package(sandbox, token, {"name": "questionnaire", "valueCanonical": ADAPTIVE},
                                  {"name": "order", "resource": _order("E0431")}))
    shell = bundle["entry"][0]["resource"]
    assert "item" not in shell
    assert shell["extension"][0]["valueUrl"] == sandbox.fhir_base
    qr: Json = _resources(bundle, "QuestionnaireResponse")[0]
    assert qr["contained"][0]["derivedFrom"] == [ADAPTIVE] and qr["questionnaire"] == "#adaptive"
    return qr


def _ask(sandbox: SandboxServer, token: str, qr: Json, name: str = "questionnaire-response") -> httpx.Response:
    return _post(sandbox, "next-question", _params({"name": name, "resource": qr}), token)


def _next(sandbox: SandboxServer, token: str, qr: Json, name: str = "questionnaire-response") -> Json:
    answer = _ask(sandbox, token, qr, name)
    assert answer.status_code == 200, answer.text
    (part,) = answer.json()["parameter"]
    assert part["name"] == ("return" if name == "questionnaire-response" else "questionnaire-response-out")
    returned: Json = part["resource"]
    return returned


def _asked(qr: Json) -> list[str]:
    return [i["linkId"] for i in qr["contained"][0].get("item", [])]


def _answer(qr: Json, **values: Json) -> Json:
    out = copy.deepcopy(qr)
    out["item"] = [*out.get("item", []), *({"linkId": k, "answer": [v]} for k, v in values.items())]
    return out


def _coverage_information(qr: Json) -> dict[str, Any]:
    (info,) = [e for e in qr["extension"] if e["url"] == COVERAGE_INFORMATION]
    return {p["url"]: next(v for k, v in p.items() if k.startswith("value")) for p in info["extension"]}


def test_adaptive_form_to_completion_with_a_qualifying_test(sandbox: SandboxServer, token: str) -> None:
    before = sandbox.stats()["dtr_next_questions"]
    qr = _next(sandbox, token, _adaptive_draft(sandbox, token))
    assert _asked(qr) == ["qualifying-test"] and qr["status"] == "in-progress"
    qr = _next(sandbox, token, _answer(qr, **{"qualifying-test": {"valueBoolean": True}}))
    assert _asked(qr) == ["qualifying-test", "spo2", "test-date"]
    qr = _next(sandbox, token, _answer(qr, spo2={"valueDecimal": 86.5}, **{"test-date": {"valueDate": "2026-11-28"}}))
    assert qr["status"] == "completed"
    info = _coverage_information(qr)
    assert info["covered"] == "covered" and info["pa-needed"] == "no-auth"
    assert info["coverage"] == {"reference": "Coverage/cov-alex"} and info["coverage-assertion-id"]
    assert sandbox.stats()["dtr_next_questions"] == before + 3
    assert _ask(sandbox, token, qr).status_code == 400  # a completed form is not advanced again


def test_adaptive_form_branches_without_a_test_and_speaks_dtr_2_1(sandbox: SandboxServer, token: str) -> None:
    qr = _next(sandbox, token, _adaptive_draft(sandbox, token), "questionnaire-response-in")
    qr = _next(sandbox, token, _answer(qr, **{"qualifying-test": {"valueBoolean": False}}), "questionnaire-response-in")
    assert _asked(qr) == ["qualifying-test", "no-test-reason"]
    reason = {"system": "http://fhir-pa.example/sandbox/CodeSystem/oxygen-no-test-reason", "code": "scheduled"}
    qr = _next(sandbox, token, _answer(qr, **{"no-test-reason": {"valueCoding": reason}}), "questionnaire-response-in")
    info = _coverage_information(qr)
    assert qr["status"] == "completed" and info["covered"] == "conditional" and info["doc-needed"] == "clinical"


def test_invalid_adaptive_responses_are_400(sandbox: SandboxServer, token: str) -> None:
    first = _next(sandbox, token, _adaptive_draft(sandbox, token))
    unanswered = _ask(sandbox, token, first)
    assert unanswered.status_code == 400
    assert unanswered.json()["issue"][0]["expression"] == ["QuestionnaireResponse.item.where(linkId='qualifying-test')"]
    wrong_type = _ask(sandbox, token, _answer(first, **{"qualifying-test": {"valueString": "yes"}}))
    assert wrong_type.status_code == 400
    foreign = copy.deepcopy(first)
    foreign["contained"][0]["derivedFrom"] = [NEB]
    assert _ask(sandbox, token, foreign).json()["issue"][0]["expression"] == ["QuestionnaireResponse.contained"]
    tampered = _answer(first, **{"qualifying-test": {"valueBoolean": True}})
    tampered["contained"][0]["item"][0]["linkId"] = "something-else"
    assert _ask(sandbox, token, tampered).status_code == 400
    missing = _post(sandbox, "next-question", _params({"name": "questionnaire-response", "valueString": "x"}), token)
    assert missing.status_code == 400 and "questionnaire-response" in missing.json()["issue"][0]["expression"][0]


# --- $log-questionnaire-errors ----------------------------------------------------------------------


def test_questionnaire_errors_are_logged(sandbox: SandboxServer, token: str) -> None:
    before = sandbox.stats()["dtr_errors_logged"]
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing",
                                                              "diagnostics": "PrimaryDiagnosis: engine error"}]}
    answer = _post(sandbox, "log-questionnaire-errors", _params({"name": "questionnaire", "valueCanonical": NEB},
                                                                {"name": "operationOutcome", "resource": outcome}),
                   token)
    assert answer.status_code == 200
    assert answer.json()["issue"][0]["severity"] == "information"
    logged = sandbox.state.dtr_errors[-1]
    assert logged.questionnaires == (NEB,) and logged.outcomes == (outcome,)
    assert sandbox.stats()["dtr_errors_logged"] == before + 1
    no_outcome = _post(sandbox, "log-questionnaire-errors", _params({"name": "questionnaire", "valueCanonical": NEB}),
                       token)
    assert no_outcome.status_code == 400 and "operationOutcome" in no_outcome.json()["issue"][0]["expression"][0]
    no_canonical = _post(sandbox, "log-questionnaire-errors",
                         _params({"name": "operationOutcome", "resource": outcome}), token)
    assert no_canonical.status_code == 400 and "questionnaire" in no_canonical.json()["issue"][0]["expression"][0]
    assert sandbox.stats()["dtr_errors_logged"] == before + 1


def test_library_content_is_base64_of_our_files(sandbox: SandboxServer, token: str) -> None:
    (bundle,) = _bundles(_package(sandbox, token, {"name": "questionnaire", "valueCanonical": NEB}))
    cql = {lib["name"]: base64.b64decode(lib["content"][0]["data"]).decode() for lib in _resources(bundle, "Library")}
    on_disk = packaged_data("dtr").joinpath("cql", "SandboxPatientInfo.cql").read_text(encoding="utf-8")
    assert cql["SandboxPatientInfo"] == on_disk

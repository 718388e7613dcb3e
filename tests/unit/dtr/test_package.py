"""$questionnaire-package: inputs built strictly, every package shape payers send read leniently."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import respx

from fhir_pa.crd.handoff import DtrHandoff
from fhir_pa.dtr.package import (
    INPUT_PROFILE,
    PackageCache,
    check_package_parameters,
    package_flow,
    package_parameters,
    parameters_from_handoff,
    parameters_from_pended,
    read_package_response,
)
from fhir_pa.errors import InputError, InvalidResponse, PayerRejected, ProfileError
from fhir_pa.fhir.flow import run_async, run_sync
from fhir_pa.pas.decision import parse_response
from tests.conftest import load_fixture

BASE = "https://payer.test/fhir"
URL = f"{BASE}/Questionnaire/$questionnaire-package"
COVERAGE: dict[str, Any] = {"resourceType": "Coverage", "id": "cov1", "status": "active"}
ORDER: dict[str, Any] = {"resourceType": "DeviceRequest", "id": "dr1", "status": "draft", "intent": "order"}


def _body(resource: Any) -> bytes:
    return json.dumps(resource).encode()


def _rules(issues: Any) -> set[str]:
    return {i.rule for i in issues if i.severity == "error"}


# --- inputs -----------------------------------------------------------------------------------------


def test_conformant_fixture_inputs_pass() -> None:
    for name in ("questionnaire_package_input_params_conformant.spec.json",
                 "questionnaire_package_input_params_ri.spec.json"):
        params = load_fixture("dtr", "operation-inputs", name)
        assert [i for i in check_package_parameters(params) if i.severity == "error"] == [], name


def test_non_conformant_fixture_is_not_parameters() -> None:
    params = load_fixture("dtr", "operation-inputs", "questionnaire_package_input_params_non_conformant.spec.json")
    issues = check_package_parameters(params)
    assert len(issues) == 1
    assert issues[0].rule == "structure" and "not Bundle" in issues[0].message


def test_build_orders_questionnaires_context_changedsince() -> None:
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5)))
    params = package_parameters(COVERAGE, [ORDER], questionnaires=["http://p/Q|1"], context="abc",
                                changedsince=since)
    assert params["meta"]["profile"] == [INPUT_PROFILE]
    by_name = {p["name"]: p for p in params["parameter"]}
    assert by_name["coverage"]["resource"]["id"] == "cov1"
    assert by_name["order"]["resource"]["id"] == "dr1"
    assert by_name["questionnaire"]["valueCanonical"] == "http://p/Q|1"
    assert by_name["context"]["valueString"] == "abc"
    assert by_name["changedsince"]["valueInstant"] == "2026-01-02T08:04:05.000Z"


def test_dtr1_needs_order_questionnaire_or_context() -> None:
    with pytest.raises(ProfileError) as caught:
        package_parameters(COVERAGE)
    assert caught.value.issues[0].rule == "dtr-1"
    assert package_parameters(COVERAGE, context="trn-1")["parameter"][1]["valueString"] == "trn-1"


def test_wrong_types_and_cardinalities_are_named() -> None:
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "coverage", "resource": COVERAGE}, {"name": "coverage", "resource": COVERAGE},
        {"name": "order", "resource": {"resourceType": "Patient"}},
        {"name": "context", "valueString": "a"}, {"name": "context", "valueString": "b"}]}
    issues = check_package_parameters(params)
    assert {i.path for i in issues if i.rule == "type"} == {"Parameters.parameter[2].resource"}
    assert sum(i.rule == "cardinality" for i in issues) == 2
    assert [i.severity for i in check_package_parameters(params, version="2.1") if i.rule == "cardinality"] == \
        ["error"]  # 2.1 allowed several coverages; still one context
    no_coverage = {"resourceType": "Parameters", "parameter": [{"name": "context", "valueString": "a"}]}
    assert _rules(check_package_parameters(no_coverage)) == {"cardinality"}


def test_naive_changedsince_rejected() -> None:
    with pytest.raises(InputError):
        package_parameters(COVERAGE, [ORDER], changedsince=datetime(2026, 1, 1))


def test_from_crd_handoff_uses_assertion_id() -> None:
    handoff = DtrHandoff("DeviceRequest/dr1", "Coverage/cov1", ("http://p/Q",), ("assert-1",), ("clinical",))
    params = parameters_from_handoff(handoff, COVERAGE, [ORDER])
    by_name = {p["name"]: p for p in params["parameter"]}
    assert by_name["context"]["valueString"] == "assert-1"
    assert by_name["questionnaire"]["valueCanonical"] == "http://p/Q"
    with pytest.raises(InputError) as caught:
        parameters_from_handoff(handoff, COVERAGE, [{**ORDER, "id": "other"}])
    assert caught.value.path == "orders[0]"


def _pended(codes: list[str]) -> dict[str, Any]:
    return {
        "resourceType": "ClaimResponse", "id": "cr1", "status": "active", "use": "preauthorization",
        "outcome": "complete", "created": "2026-01-01",
        "contained": [{"resourceType": "CommunicationRequest", "id": "c1", "status": "active",
                       "payload": [{"contentString": code} for code in codes]}],
        "communicationRequest": [{"reference": "#c1"}],
        "request": {"identifier": {"system": "urn:trnorg:X", "value": "TRN123"}},
        "item": [{"itemSequence": 1, "adjudication": [{"category": {"coding": [{"code": "submitted"}]}}]}],
    }


def test_from_pended_pas_response_uses_trn() -> None:
    decision = parse_response(_pended(["102089-0"]))
    params = parameters_from_pended(decision, COVERAGE)
    assert [p["name"] for p in params["parameter"]] == ["coverage", "context"]
    assert params["parameter"][1]["valueString"] == "TRN123"
    with pytest.raises(InputError):
        parameters_from_pended(parse_response(_pended(["11506-3"])), COVERAGE)


# --- outputs ----------------------------------------------------------------------------------------


def test_ri_return_part_with_four_questionnaires() -> None:
    body = load_fixture("dtr", "packages", "hot-package-output-params.crd-ri.json")
    result = read_package_response(200, _body(body))
    assert [p.questionnaire["id"] for p in result.packages] == [
        "HomeOxygenTherapy", "HomeOxygenTherapyAdditional", "HomeOxygenTherapyFaceToFace", "HomeOxygenTherapyLab"]
    first = result.packages[0]
    assert first.response is None and len(first.libraries) == 7 and len(first.valuesets) == 9
    assert any(i.rule == "version" and "'return'" in i.message for i in result.warnings)
    assert {i.rule for i in first.warnings} >= {"DTR-QPackageBundle"}
    assert not result.unchanged


def test_conformant_packagebundle_case_insensitive() -> None:
    body = load_fixture("dtr", "packages", "hot-lab-package-output-params.conformant.json")
    result = read_package_response(200, _body(body))
    assert len(result.packages) == 2  # two Questionnaires in the "conformant" Bundle
    assert result.packages[0].questionnaire["id"] == "HomeOxygenTherapyLab"
    assert result.packages[1].canonical == \
        "http://hl7.org/fhir/us/davinci-dtr/Questionnaire/home-o2-std-questionnaire|0.1.0"
    assert not any(i.rule == "oper-13" for i in result.packages[0].warnings)
    assert not any(i.rule == "dtrb-1" for i in result.packages[0].warnings)


def test_bare_testkit_bundle_and_adaptive_flag() -> None:
    body = load_fixture("dtr", "packages", "dinner-adaptive-package-bundle.testkit.json")
    result = read_package_response(200, _body(body))
    assert len(result.packages) == 1 and result.packages[0].adaptive
    assert result.warnings[0].rule == "shape"


def test_library_without_elm_and_questionnaire_not_first_warn() -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Library", "id": "L", "content": [{"contentType": "text/cql", "data": "eA=="}]}},
        {"resource": {"resourceType": "Questionnaire", "id": "Q", "url": "http://p/Q"}},
        {"resource": {"resourceType": "QuestionnaireResponse", "questionnaire": "http://p/Q|2"}}]}
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "PackageBundle", "resource": bundle},
        {"name": "outcome", "resource": {"resourceType": "OperationOutcome", "issue": [
            {"severity": "warning", "code": "not-found", "diagnostics": "Questionnaire X not found"}]}}]}
    result = read_package_response(200, _body(params))
    package = result.packages[0]
    assert {i.rule for i in package.warnings} == {"dtrb-1", "oper-13"}
    assert package.response is not None and package.response["questionnaire"] == "http://p/Q|2"
    assert any(i.message == "Questionnaire X not found" and i.severity == "warning" for i in result.warnings)


def test_operation_outcome_is_a_typed_error() -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid", "diagnostics": "unknown coverage", "expression": ["coverage"]}]}
    with pytest.raises(PayerRejected) as caught:
        read_package_response(400, _body(outcome))
    assert caught.value.status == 400 and "unknown coverage" in str(caught.value) and caught.value.path == "coverage"
    with pytest.raises(PayerRejected):
        read_package_response(200, _body(outcome))  # a bare error OperationOutcome on 200 (oper-8)
    with pytest.raises(InvalidResponse):
        read_package_response(200, b"<html>")
    with pytest.raises(InvalidResponse):
        read_package_response(200, _body({"resourceType": "Patient"}))


def test_empty_parameters_means_unchanged() -> None:
    result = read_package_response(200, _body({"resourceType": "Parameters"}))
    assert result.unchanged and result.packages == ()


@respx.mock
def test_flow_posts_type_level_and_cache_keeps_unchanged() -> None:
    package = load_fixture("dtr", "packages", "dinner-static-package-bundle.testkit.json")
    route = respx.post(URL).mock(side_effect=[
        httpx.Response(200, json={"resourceType": "Parameters", "parameter": [
            {"name": "packagebundle", "resource": package}]}),
        httpx.Response(200, json={"resourceType": "Parameters"}),
    ])
    params = package_parameters(COVERAGE, [ORDER])
    cache = PackageCache()
    with httpx.Client() as http:
        first = run_sync(package_flow(BASE, params, cache=cache), http, None)
        second = run_sync(package_flow(BASE, params, cache=cache), http, None)
    assert first.packages[0].questionnaire["id"] == "DinnerOrderStatic" and not first.from_cache
    assert second.from_cache and second.packages[0].questionnaire["id"] == "DinnerOrderStatic"
    sent = json.loads(route.calls[1].request.content)
    assert any(p["name"] == "changedsince" for p in sent["parameter"])
    assert not any(p["name"] == "changedsince" for p in json.loads(route.calls[0].request.content)["parameter"])
    assert route.calls[0].request.headers["content-type"] == "application/fhir+json"


@respx.mock
async def test_flow_async_same_logic() -> None:
    respx.post(URL).mock(return_value=httpx.Response(422, json={"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "processing", "diagnostics": "context not known"}]}))
    async with httpx.AsyncClient() as http:
        with pytest.raises(PayerRejected) as caught:
            await run_async(package_flow(BASE, package_parameters(COVERAGE, context="x")), http, None)
    assert "context not known" in str(caught.value)


def test_cache_key_ignores_changedsince_and_order_sequence() -> None:
    cache = PackageCache()
    body = load_fixture("dtr", "packages", "dinner-static-package-bundle.testkit.json")
    result = read_package_response(200, _body(body))
    other = {**ORDER, "id": "dr2"}
    cache.put(BASE, package_parameters(COVERAGE, [ORDER, other]), result, at=datetime(2026, 1, 1, tzinfo=UTC))
    again = package_parameters(COVERAGE, [other, ORDER], changedsince="2026-01-01T00:00:00Z")
    assert cache.get(BASE + "/", again) is result
    assert cache.fetched_at(BASE, again) == "2026-01-01T00:00:00.000Z"
    assert cache.get(BASE, package_parameters(COVERAGE, [ORDER])) is None


@respx.mock
def test_falls_back_to_system_level_path() -> None:
    respx.post(URL).mock(return_value=httpx.Response(404))
    package = load_fixture("dtr", "packages", "dinner-static-package-bundle.testkit.json")
    system = respx.post(f"{BASE}/$questionnaire-package").mock(return_value=httpx.Response(200, json=package))
    with httpx.Client() as http:
        result = run_sync(package_flow(BASE, package_parameters(COVERAGE, [ORDER])), http, None)
        assert system.called and result.packages[0].questionnaire["id"] == "DinnerOrderStatic"
        with pytest.raises(PayerRejected) as caught:
            run_sync(package_flow(BASE, package_parameters(COVERAGE, [ORDER]), fallback=False), http, None)
    assert caught.value.status == 404

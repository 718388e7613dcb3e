"""Every CDS Hooks response among the shared CRD fixtures, explained: the values each one really carries."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fhir_pa.crd.apply import apply_coverage_information, auto_applicable
from fhir_pa.crd.cards import Indicator, parse_hook_response
from fhir_pa.crd.coverage_info import CRD_TEMP, EXT_COVERAGE_INFORMATION, Contact, Telecom
from fhir_pa.crd.decision import coverage_decisions
from fhir_pa.crd.explain import explain_json
from fhir_pa.errors import InvalidResponse
from fhir_pa.pas.decision_types import Coding, Quantity
from tests.conftest import fixture_path, load_fixture

CPT = "http://www.ama-assn.org/go/cpt"


def test_ig_response_coverage_information_uses_every_part() -> None:
    response = parse_hook_response(load_fixture("crd", "CRDServiceResponse.json"))
    (decision,) = coverage_decisions(response)
    (info,) = decision.information
    assert decision.order == "ServiceRequest/idfromcontext" and decision.origin == "system-action"
    assert (info.coverage, info.covered, info.pa_needed) == ("http://example.org/fhir/Coverage/example", "covered",
                                                             "satisfied")
    assert info.satisfied_pa_id == "Q8U119" and info.coverage_assertion_id == "12345ABC"
    assert (info.doc_needed, info.info_needed, info.doc_purpose) == (("conditional",), ("OTH",), ())
    assert info.billing_codes == tuple(Coding(CPT, code, None) for code in ("77065", "77066", "77067"))
    assert [(r.system, r.code, r.text) for r in info.reasons] == [
        (CRD_TEMP, "auth-out-network", "In-network required unless exigent circumstances"),
        (None, None, "Diagnosis needed to determine documentation requirements")]
    (detail,) = info.details
    assert (detail.category, [c.code for c in detail.code], detail.value, detail.qualification) == (
        "cat-limitation", ["out-network-copay"], Quantity(10, "%"), "Copay minimum is $15")
    assert info.dependencies == ("http://example.org/fhir/ServiceRequest/example2",)
    assert info.date == "2019-02-15" and info.expiry_date is None and info.questionnaires == ()
    assert info.contacts == (Contact(None, (Telecom("url", "http://some-payer/xyz-sub-org/get-help-here.html",
                                                    None),)),)
    assert decision.issues == ()  # the IG's own example obeys q1..q9


def test_ig_response_placeholder_matches_the_request_order_with_the_same_code() -> None:
    request = load_fixture("crd", "CRDServiceRequest.json")
    orders = [e["resource"] for e in request["context"]["draftOrders"]["entry"]]
    response = parse_hook_response(load_fixture("crd", "CRDServiceResponse.json"))
    decisions = coverage_decisions(response, orders)
    assert [(d.order, d.pa_needed, d.satisfied_pa_ids) for d in decisions] == [
        ("ServiceRequest/1357", "satisfied", ("Q8U119",)), ("ServiceRequest/2468", None, ())]
    assert [i.rule for i in decisions[1].issues] == ["hook-16"]


def test_ig_response_cards() -> None:
    response = parse_hook_response(load_fixture("crd", "CRDServiceResponse.json"))
    reminder, guideline, alternative = response.cards
    assert (reminder.card_type, reminder.source.label, reminder.indicator) == (
        "clinical-reminder", "You are Covered Insurance", Indicator.INFO)
    assert reminder.summary == "Patient is overdue for a PAP smear"
    assert guideline.card_type == "guideline" and guideline.associated_resources == ("ServiceRequest/2468",)
    assert [(link.type, link.smart_launch) for link in guideline.links] == [("absolute", False)] * 2
    assert alternative.card_type == "therapy-alternatives-opt" and alternative.selection_behavior == "any"
    (suggestion,) = alternative.suggestions
    assert [(a.type, a.target) for a in suggestion.actions] == [
        ("delete", "ServiceRequest/2468"), ("create", "ServiceRequest/AAA"), ("create", "DeviceRequest/BBB")]
    assert not any(auto_applicable(a) for a in suggestion.actions)
    assert auto_applicable(response.system_actions[0])


def test_ig_response_update_applies_to_our_order() -> None:
    response = parse_hook_response(load_fixture("crd", "CRDServiceResponse.json"))
    order = {"resourceType": "ServiceRequest", "id": "2468", "status": "draft", "intent": "order"}
    result = apply_coverage_information(order, response.system_actions[0])
    assert result["status"] == "draft" and result["intent"] == "order" and "requester" not in result
    (ext,) = result["extension"]
    assert ext["url"] == EXT_COVERAGE_INFORMATION
    assert {"url": "satisfied-pa-id", "valueString": "Q8U119"} in ext["extension"]


def test_ig_response2_has_no_coverage_information_but_every_other_card_type() -> None:
    response = parse_hook_response(load_fixture("crd", "CRDServiceResponse2.json"))
    assert coverage_decisions(response) == ()
    (missing,) = coverage_decisions(response, ["MedicationRequest/2222"])
    assert missing.covered is None and [i.rule for i in missing.issues] == ["hook-16"]
    assert [c.card_type for c in response.cards] == [
        "therapy-alternatives-req", "clinical-reminder", None, "insurance", "guideline"]
    assert [c.associated_resources for c in response.cards] == [
        ("MedicationRequest/2222",), ("MedicationRequest/1111",), ("MedicationRequest/2222",), (),
        ("MedicationRequest/2222",)]
    alternative, labs, form, insurance, smart = response.cards
    assert [(a.type, a.target) for a in alternative.suggestions[0].actions] == [
        ("delete", "MedicationRequest/2222"), ("create", "MedicationRequest/1")]
    assert [(a.target, a.if_none_exist) for a in form.suggestions[0].actions] == [
        ("Questionnaire/1", "url=http://example.org/Questionnaire/XYZ&version=2"), ("Task/1", None)]
    (coverage_update,) = insurance.suggestions[0].actions
    assert insurance.suggestions[0].uuid == "1207df9d-9ff6-4042-985b-b8dec21038c2"
    assert (coverage_update.type, coverage_update.target) == ("update", "Coverage/1234")
    assert not auto_applicable(coverage_update)  # resp-68: a Coverage update waits for a human
    (link,) = smart.links
    assert link.smart_launch and link.url == "https://example.org/opioid-assessment"
    assert json.loads(link.app_context or "") == {"payerXYZQNum": "205f471f-f408-45d4-9213-0eedf95f417f"}
    assert labs.summary == "Liver testing recommended" and labs.suggestions[0].actions[0].type == "create"


def test_ig_response3_minimal_covered_no_auth() -> None:
    response = parse_hook_response(load_fixture("crd", "CRDServiceResponse3.json"))
    assert response.cards == () and response.warnings == ()
    (decision,) = coverage_decisions(response)
    assert (decision.order, decision.covered, decision.pa_needed, decision.doc_needed) == (
        "CommunicationRequest/example", "covered", "no-auth", ())
    (info,) = decision.information
    assert (info.coverage, info.date, info.coverage_assertion_id) == (
        "http://example.org/fhir/Coverage/example", "2022-11-16", "example-assertion-id-123")
    assert decision.issues == ()


def test_inferno_conditional_system_action() -> None:
    action = load_fixture("crd", "coverage_info_system_action_conditional.json")
    response = parse_hook_response({"cards": [], "systemActions": [action]})
    (decision,) = coverage_decisions(response, ["DeviceRequest/devreq-015-e0250"])
    assert (decision.covered, decision.pa_needed, decision.doc_needed, decision.doc_purpose,
            decision.info_needed) == ("conditional", None, ("clinical",), ("withorder",), ("performer",))
    (info,) = decision.information
    assert (info.coverage, info.date) == ("Coverage/coverageexample", "2026-01-12")
    assert decision.coverage_assertion_ids == (
        "550534aef317a1ceb97d8eac9577428c4b7714654e819cd64e42844b7e42ec6d",)
    # Inferno's fixture is CRD 2.0.1: 2.2's q8 (doc-purpose needs a reason) did not exist yet.
    assert [i.rule for i in decision.issues] == ["crd-ci-q8"]
    assert auto_applicable(response.system_actions[0])


def _all_fixtures() -> list[tuple[str, Any]]:
    folder = fixture_path("crd")
    return [(p.name, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(folder.glob("*.json"))]


def test_every_response_fixture_explains_and_every_other_is_refused() -> None:
    responses = 0
    for name, data in _all_fixtures():
        if "cards" in data:
            view = explain_json(parse_hook_response(data, source=name))
            assert set(view) >= {"orders", "cards"}, name
            assert all(set(o) >= {"order", "covered", "pa_needed", "doc_needed", "questionnaires"}
                       for o in view["orders"]), name
            assert all(set(c) >= {"summary", "indicator"} for c in view["cards"]), name
            responses += 1
        else:
            with pytest.raises(InvalidResponse):
                parse_hook_response(data, source=name)
    assert responses == 3


def test_explain_json_of_the_ig_response() -> None:
    response = parse_hook_response(load_fixture("crd", "CRDServiceResponse.json"))
    view = explain_json(response)
    (order,) = view["orders"]
    assert {k: order[k] for k in ("order", "covered", "pa_needed", "doc_needed", "questionnaires",
                                  "coverage_assertion_id", "satisfied_pa_id")} == {
        "order": "ServiceRequest/idfromcontext", "covered": "covered", "pa_needed": "satisfied",
        "doc_needed": ["conditional"], "questionnaires": [], "coverage_assertion_id": "12345ABC",
        "satisfied_pa_id": "Q8U119"}
    assert [r["code"] for r in order["reasons"]] == ["auth-out-network", None]
    assert [c["code"] for c in order["information"][0]["billing_codes"]] == ["77065", "77066", "77067"]
    first = view["cards"][0]
    assert (first["summary"], first["indicator"]) == ("Patient is overdue for a PAP smear", "info")
    assert view["cards"][1]["source"]["label"] == "Centers for Medicare & Medicaid Services"
    assert json.loads(json.dumps(view)) == view  # JSON types only

"""What a CRD decision hands to DTR and PAS."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_pa.crd.cards import parse_hook_response
from fhir_pa.crd.client import CrdResult
from fhir_pa.crd.coverage_info import EXT_COVERAGE_INFORMATION
from fhir_pa.crd.decision import coverage_decisions
from fhir_pa.crd.handoff import coverage_extensions, dtr_handoff
from fhir_pa.errors import InputError
from fhir_pa.pas.bundle import build_request_bundle
from fhir_pa.pas.checks import check_request_bundle
from fhir_pa.pas.order import order_from_data
from tests.conftest import order_data

Q = "http://payer.example/Questionnaire/nebulizer|1.0.0"


def _information(**codes: Any) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"url": "coverage", "valueReference": {"reference": "Coverage/cov-1"}},
                                   {"url": "covered", "valueCode": "covered"}]
    parts += [{"url": k.replace("_", "-"), "valueCode": v} for k, v in codes.items() if k != "questionnaire"]
    if "questionnaire" in codes:
        parts.append({"url": "questionnaire", "valueCanonical": codes["questionnaire"]})
    parts += [{"url": "date", "valueDate": "2026-12-01"}, {"url": "coverage-assertion-id", "valueString": "CA-1"}]
    return {"url": EXT_COVERAGE_INFORMATION, "extension": parts}


def _result(information: dict[str, Any]) -> CrdResult:
    order = {"resourceType": "ServiceRequest", "id": "sr-1", "extension": [information]}
    response = parse_hook_response({"cards": [], "systemActions": [{"type": "update", "resource": order}]})
    return CrdResult("order-sign", "order-sign-crd", "x", coverage_decisions(response, ["ServiceRequest/sr-1"]),
                     (), True, None, 0.1, response=response)


def test_documentation_needed_hands_forms_and_assertion_to_dtr() -> None:
    result = _result(_information(pa_needed="auth-needed", doc_needed="clinical", doc_purpose="withpa",
                                  questionnaire=Q))
    handoff = dtr_handoff(result.decisions[0])
    assert handoff is not None
    assert (handoff.order, handoff.coverage, handoff.questionnaires, handoff.coverage_assertion_ids) == (
        "ServiceRequest/sr-1", "Coverage/cov-1", (Q,), ("CA-1",))


def test_no_documentation_means_no_dtr() -> None:
    assert dtr_handoff(_result(_information(pa_needed="no-auth")).decisions[0]) is None


def test_coverage_information_travels_into_the_pas_bundle_and_still_passes_the_checks() -> None:
    information = _information(pa_needed="auth-needed")
    result = _result(information)
    extensions = coverage_extensions(result, "ServiceRequest/sr-1")
    assert extensions == [information] and coverage_extensions(result, "ServiceRequest/other") == []
    data = order_data()
    data["services"][0]["coverage_information"] = extensions
    request = build_request_bundle(order_from_data(data))
    entries = {e["fullUrl"]: e["resource"] for e in request.bundle["entry"]}
    [order] = [r for r in entries.values() if r["resourceType"] == "ServiceRequest"]
    [echoed] = order["extension"]
    coverage_ref = next(p["valueReference"]["reference"] for p in echoed["extension"] if p["url"] == "coverage")
    assert entries[coverage_ref]["resourceType"] == "Coverage", "points at the Bundle's own Coverage"
    assert [p for p in echoed["extension"] if p["url"] != "coverage"] == \
        [p for p in information["extension"] if p["url"] != "coverage"], "everything else as the payer sent it"
    assert check_request_bundle(request.bundle) == []


def test_an_order_line_refuses_something_that_is_not_coverage_information() -> None:
    data = order_data()
    data["services"][0]["coverage_information"] = [{"url": "http://example.org/other", "extension": []}]
    with pytest.raises(InputError, match="coverage_information"):
        order_from_data(data)

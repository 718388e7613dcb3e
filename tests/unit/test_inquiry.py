"""``$inquire``: the Inquiry Request Bundle we build, and every answer shape we read (notes/pas.md §2.9)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from fhir_pa.config import Sender
from fhir_pa.errors import InputError, InvalidResponse
from fhir_pa.pas import codes
from fhir_pa.pas.bundle import build_request_bundle
from fhir_pa.pas.decision import DecisionStatus
from fhir_pa.pas.inquiry import (
    EXT_ADMINISTRATION_REFERENCE,
    EXT_AUTHORIZATION_NUMBER,
    build_inquiry_bundle,
    parse_inquiry_response,
)
from fhir_pa.pas.order import PriorAuthOrder
from fhir_pa.pas.references import BundleIndex, iter_references
from fhir_pa_sandbox.inquire import Inquiry, read_inquiry
from tests.conftest import load_fixture

Json = dict[str, Any]
SENDER = Sender(interchange_sender_id="SYS1", trn_originator="clinic")


def _request(make_order: Callable[..., PriorAuthOrder]) -> Json:
    order = make_order(services=[
        {"code": "72148", "service_date": "2026-12-01", "quantity": 1, "unit": "visit"},
        {"code": "27447", "service_date": "2026-12-02", "quantity": 1, "unit": "visit"}])
    return build_request_bundle(order, sender=SENDER).bundle


def _every_reference_resolves_once(bundle: Json) -> None:
    index = BundleIndex(bundle["entry"])
    for entry in bundle["entry"]:
        for where, reference in iter_references(entry["resource"], entry["fullUrl"]):
            assert len(index.resolve(reference, entry["fullUrl"])) == 1, where


def test_inquiry_names_patient_provider_insurer_and_the_numbers_we_were_given(
        make_order: Callable[..., PriorAuthOrder]) -> None:
    original = _request(make_order)
    inquiry = build_inquiry_bundle(original, sender=SENDER, preauth_ref="PA-1", administration_refs={2: "PEND-2"})
    bundle = inquiry.bundle
    claim = bundle["entry"][0]["resource"]
    assert bundle["meta"]["profile"] == [codes.profile("pas-inquiry-request-bundle")]
    assert claim["meta"]["profile"] == [codes.profile("claim-inquiry")]
    assert bundle["identifier"]["value"] != original["identifier"]["value"]
    assert claim["identifier"] != original["entry"][0]["resource"]["identifier"], "a fresh trace number"
    assert {"url": EXT_AUTHORIZATION_NUMBER, "valueString": "PA-1"} in claim["extension"]
    refs = {item["sequence"]: [e.get("valueString") for e in item["extension"]
                               if e["url"] == EXT_ADMINISTRATION_REFERENCE] for item in claim["item"]}
    assert refs == {1: [], 2: ["PEND-2"]}
    assert "supportingInfo" not in claim and "diagnosis" not in claim and "careTeam" not in claim
    _every_reference_resolves_once(bundle)
    assert len({e["fullUrl"] for e in bundle["entry"]}) == len(bundle["entry"])
    kinds = sorted(e["resource"]["resourceType"] for e in bundle["entry"][1:])
    assert kinds == ["Coverage", "Organization", "Organization", "Patient"]


def test_the_payer_side_can_search_by_what_the_inquiry_carries(make_order: Callable[..., PriorAuthOrder]) -> None:
    bundle = build_inquiry_bundle(_request(make_order), sender=SENDER, preauth_ref="PA-1").bundle
    keys = read_inquiry(bundle)
    assert isinstance(keys, Inquiry)
    assert "MEM1" in keys.patient_keys and "1467586115" in keys.provider_npis
    assert keys.numbers == {"PA-1"} and {"72148", "27447"} <= keys.service_codes


def test_an_ig_request_can_be_inquired_about_too() -> None:
    original = load_fixture("pas", "Bundle-ReferralAuthorizationBundleExample.json")
    bundle = build_inquiry_bundle(original).bundle
    claim = bundle["entry"][0]["resource"]
    assert claim["resourceType"] == "Claim"
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    assert {claim[k]["reference"] for k in ("patient", "provider", "insurer")} <= full_urls, \
        "relative references were pointed at the targets' fullUrls"
    _every_reference_resolves_once(bundle)
    assert isinstance(read_inquiry(bundle), Inquiry)


def test_a_request_without_a_claim_or_provider_is_refused() -> None:
    with pytest.raises(InputError) as caught:
        build_inquiry_bundle({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}]})
    assert caught.value.path == "Bundle.entry[0].resource"
    original = load_fixture("pas", "Bundle-ReferralAuthorizationBundleExample.json")
    del original["entry"][0]["resource"]["provider"]
    with pytest.raises(InputError) as caught:
        build_inquiry_bundle(original)
    assert caught.value.path == "Bundle.entry[0].resource.provider"


def _response_bundle() -> Json:
    return load_fixture("pas", "Bundle-ReferralPendingAuthorizationResponseBundleExample.json")  # type: ignore[no-any-return]


def test_ig_parameters_example_named_response_bundle() -> None:
    body = json.dumps(load_fixture("pas", "Parameters-PASClaimInquiryOperationResponseExample.json")).encode()
    result = parse_inquiry_response(200, body)
    assert not result.not_found and result.shape == "responseBundle"
    assert len(result.decisions) == len(result.bundles) == 1


@pytest.mark.parametrize(("wrap", "shape"), [
    (lambda b: {"resourceType": "Parameters", "parameter": [{"name": "return", "resource": b}]}, "return"),
    (lambda b: b, "bare"),
])
def test_return_parameters_and_bare_bundles(wrap: Callable[[Json], Json], shape: str) -> None:
    result = parse_inquiry_response(200, json.dumps(wrap(_response_bundle())).encode())
    assert result.shape == shape and [d.status for d in result.decisions] == [DecisionStatus.PENDED]


def test_several_matches_and_a_withheld_results_warning() -> None:
    approved = load_fixture("pas", "Bundle-ReferralAuthorizationResponseBundleExample.json")
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "return", "resource": _response_bundle()}, {"name": "return", "resource": approved},
        {"name": "outcome", "resource": {"resourceType": "OperationOutcome", "issue": [
            {"severity": "warning", "code": "suppressed", "diagnostics": "some results withheld"}]}}]}
    result = parse_inquiry_response(200, json.dumps(body).encode())
    assert [d.status for d in result.decisions] == [DecisionStatus.PENDED, DecisionStatus.APPROVED]
    assert any("withheld" in w for w in result.warnings)


@pytest.mark.parametrize(("status", "body"), [
    (404, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}),
    (404, None),
    (200, {"resourceType": "Parameters"}),
    (200, {"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "not-found"}]}),
])
def test_nothing_found_in_every_way_payers_say_it(status: int, body: Json | None) -> None:
    result = parse_inquiry_response(status, json.dumps(body).encode() if body is not None else b"")
    assert result.not_found and result.decisions == ()


@pytest.mark.parametrize(("status", "body", "words"), [
    (200, b"<html>", "not JSON"),
    (200, b'{"resourceType": "Patient"}', "not Parameters"),
    (200, json.dumps({"resourceType": "Parameters", "parameter": [
        {"name": "return", "resource": {"resourceType": "Bundle", "type": "collection"}}]}).encode(), "no $inquire"),
    (500, b"", "HTTP status 500"),
])
def test_unusable_answers_are_typed_errors(status: int, body: bytes, words: str) -> None:
    with pytest.raises(InvalidResponse) as caught:
        parse_inquiry_response(status, body)
    assert words in caught.value.one_line()

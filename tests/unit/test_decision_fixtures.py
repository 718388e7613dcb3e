"""Every PAS payload in the shared fixtures, explained, with expectations written down from reading each file.

Also: real examples from the IG packages (2.2.1 and 2.0.1 shapes), and a seeded fuzz that damages the
fixtures at random and checks that only typed errors come out.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import tarfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fhir_pa.errors import FhirPaError, InvalidResponse
from fhir_pa.pas.decision import (
    Coding,
    DecisionStatus,
    ItemStatus,
    PasDecision,
    Period,
    Quantity,
    decision_as_json,
    parse_response,
)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
PAS = FIXTURES / "pas"
PACKAGES = FIXTURES / "packages"

X12_306 = "https://codesystem.x12.org/005010/306"
TRACE_111099 = "http://example.org/PATIENT_EVENT_TRACE_NUMBER|111099"
SUBMITTER_A12345 = "http://example.org/SUBMITTER_TRANSACTION_IDENTIFIER|A12345"


def pas_fixture(name: str) -> Path:
    path = PAS / name
    if not path.exists():
        pytest.skip(f"shared fixture pas/{name} not available")
    return path


@cache
def _package_member(package: str, member: str) -> bytes:
    with tarfile.open(PACKAGES / package) as archive:
        extracted = archive.extractfile(member)
        assert extracted is not None, member
        return extracted.read()


def package_example(package: str, name: str) -> bytes:
    if not (PACKAGES / package).exists():
        pytest.skip(f"shared package {package} not available")
    return _package_member(package, f"package/example/{name}")


@dataclass(frozen=True)
class Expected:
    status: DecisionStatus
    #: (itemSequence, review action, item status, auth number)
    items: list[tuple[int, str, ItemStatus, str | None]] = field(default_factory=list)
    #: (code, errorPath, errorElement, followup)
    errors: list[tuple[str, str | None, str | None, str | None]] = field(default_factory=list)
    outcome: str = "complete"
    claim_response_id: str | None = None
    bundle_identifier: str | None = None
    request_identifiers: tuple[str, ...] = ()
    #: substrings each expected warning contains; an empty list means no warning at all
    warnings: list[str] = field(default_factory=list)


# Written from reading each file (see ../shared/fixtures/pas/README.md for where they come from).
RESPONSES: dict[str, Expected] = {
    # IG: approved referral, item 1 A1 with reviewAction.number AUTH0001
    "Bundle-ReferralAuthorizationResponseBundleExample.json": Expected(
        DecisionStatus.APPROVED, [(1, "A1", ItemStatus.APPROVED, "AUTH0001")],
        claim_response_id="PractitionerRequestorResponseExample", bundle_identifier=SUBMITTER_A12345,
        request_identifiers=(TRACE_111099,)),
    # IG: pended, outcome complete + A4 (no auth number; administrationReferenceNumber PEND0001)
    "Bundle-ReferralPendingAuthorizationResponseBundleExample.json": Expected(
        DecisionStatus.PENDED, [(1, "A4", ItemStatus.PENDED, None)],
        claim_response_id="PractitionerRequestorPendingResponseExample", bundle_identifier=SUBMITTER_A12345,
        request_identifiers=(TRACE_111099,)),
    # IG: denied, A3 without reasons
    "Bundle-RejectionResponseBundleExample.json": Expected(
        DecisionStatus.DENIED, [(1, "A3", ItemStatus.DENIED, None)],
        claim_response_id="RejectionResponseExample", bundle_identifier=SUBMITTER_A12345,
        request_identifiers=(TRACE_111099,)),
    # IG: outcome error, two errors: 04 bare, T4 with element/path/followup
    "Bundle-ErrorResponseBundleExample.json": Expected(
        DecisionStatus.ERROR, [],
        [("04", None, None, None), ("T4", "Bundle.entry[1].Organization.name", "2010A-NM103", "C")],
        outcome="error", claim_response_id="ErrorResponseExample", bundle_identifier=SUBMITTER_A12345,
        request_identifiers=(TRACE_111099,)),
    # IG: $inquire output, Parameters "responseBundle" → inquiry response Bundle, item 1 A1 AUTH0001
    "Parameters-PASClaimInquiryOperationResponseExample.json": Expected(
        DecisionStatus.APPROVED, [(1, "A1", ItemStatus.APPROVED, "AUTH0001")],
        claim_response_id="PASClaimInquiryResponseExample",
        bundle_identifier="http://example.org/SUBMITTER_TRANSACTION_IDENTIFIER|5269367",
        request_identifiers=(TRACE_111099,)),
    # IG: notification, focus → nested copy of the approved response Bundle
    "Bundle-PASSubscriptionNotification.json": Expected(
        DecisionStatus.APPROVED, [(1, "A1", ItemStatus.APPROVED, "AUTH0001")],
        claim_response_id="PractitionerRequestorResponseExample", bundle_identifier=SUBMITTER_A12345,
        request_identifiers=(TRACE_111099,)),
    # Inferno (older): flat notification, focus → ClaimResponse; outcome queued and a placeholder code
    # PENDEDCODE (display "Pended") that is not X12 306: unknown, not final, with two warnings
    "PAS_notification_example_full_resource.json": Expected(
        DecisionStatus.UNKNOWN, [(1, "PENDEDCODE", ItemStatus.UNKNOWN, None)], outcome="queued",
        claim_response_id="482fd012-7825-423d-83de-69d09920198b",
        request_identifiers=("http://notreal.com/PATIENT_EVENT_TRACE_NUMBER|1263291",),
        warnings=["outcome 'queued' is 2.0.1-era", "'PENDEDCODE' (Pended) is not an X12 306 code"]),
    # Inferno preset: item 1 A6 + addItem(itemSequence 1, CPT 99213, A1); no Bundle.identifier
    "inferno-v221-modification_json_response.json": Expected(
        DecisionStatus.MODIFIED, [(1, "A6", ItemStatus.MODIFIED, None)],
        claim_response_id="6a5e1b90-3f6c-4a0f-9c2a-3d2f9b1d77aa",
        request_identifiers=("http://notreal.com/PATIENT_EVENT_TRACE_NUMBER|111377",)),
    # Inferno preset: outcome error, one error 04 "Authorized Quantity Exceeded"
    "inferno-v221-processing_error_response.json": Expected(
        DecisionStatus.ERROR, [], [("04", None, None, None)], outcome="error",
        claim_response_id="a1b2c3d4-0003-0000-0000-000000000001",
        bundle_identifier="urn:ietf:rfc:3986|urn:uuid:b0000003-0000-0000-0000-000000000001",
        request_identifiers=("http://notreal.com/PATIENT_EVENT_TRACE_NUMBER|111366",)),
}

# Files that are not responses: what parse_response must say about them (message part, error path).
NOT_RESPONSES: dict[str, tuple[str, str | None]] = {
    "OperationOutcome-InvalidRequestResponse.json": (
        "payer returned an OperationOutcome, not a PAS response: error invalid: The input request is not of the "
        "desired format.", None),
    "Bundle-ReferralAuthorizationBundleExample.json": ("is a PAS request Bundle", "Bundle.entry"),
    "Bundle-SurgicalRequestBundleExample.json": ("is a PAS request Bundle", "Bundle.entry"),
    "Bundle-HomecareAuthorizationUpdateBundleExample.json": ("is a PAS request Bundle", "Bundle.entry"),
    "Bundle-PASClaimInquiryBundleExample.json": ("is a PAS request Bundle", "Bundle.entry"),
    "inferno-v221-claim_update_initial_submit_payload.json": ("is a PAS request Bundle", "Bundle.entry"),
    "inferno-v221-claim_update_add_item_submit_payload.json": ("is a PAS request Bundle", "Bundle.entry"),
    "inferno-v221-claim_update_modify_cancel_submit_payload.json": ("is a PAS request Bundle", "Bundle.entry"),
    "inferno-v221-claim_update_cancel_all_submit_payload.json": ("is a PAS request Bundle", "Bundle.entry"),
    "Subscription-PASSubscriptionExample.json": ("is a Subscription, not a PAS response Bundle", "resourceType"),
    "PAS_Subscription_example_v221_good.json": ("is a Subscription, not a PAS response Bundle", "resourceType"),
}


def test_every_pas_fixture_has_written_expectations() -> None:
    if not PAS.exists():
        pytest.skip("shared fixtures not available")
    on_disk = {p.name for p in PAS.glob("*.json")}
    assert on_disk == set(RESPONSES) | set(NOT_RESPONSES), "a new fixture needs expectations in this file"


def _parse(name: str) -> PasDecision:
    return parse_response(pas_fixture(name).read_bytes(), source=name)


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_fixture_response(name: str) -> None:
    expected = RESPONSES[name]
    decision = _parse(name)
    assert decision.status is expected.status
    assert [(i.sequence, i.review_action, i.status, i.auth_number) for i in decision.items] == expected.items
    assert [(e.code, e.path, e.element, e.followup) for e in decision.errors] == expected.errors
    assert decision.outcome == expected.outcome
    assert decision.claim_response_id == expected.claim_response_id
    assert decision.bundle_identifier == expected.bundle_identifier
    assert decision.request_identifiers == expected.request_identifiers
    assert len(decision.warnings) == len(expected.warnings), decision.warnings
    for part, warning in zip(expected.warnings, decision.warnings, strict=True):
        assert part in warning
    view = decision_as_json(decision)
    assert json.loads(json.dumps(view)) == view
    assert view["status"] == expected.status.value


@pytest.mark.parametrize("name", sorted(NOT_RESPONSES))
def test_fixture_that_is_not_a_response(name: str) -> None:
    message, path = NOT_RESPONSES[name]
    with pytest.raises(InvalidResponse) as caught:
        _parse(name)
    assert message in caught.value.message
    assert caught.value.path == path


def test_approved_referral_details() -> None:
    decision = _parse("Bundle-ReferralAuthorizationResponseBundleExample.json")
    item = decision.items[0]
    assert item.validity == Period("2005-05-02", "2005-06-02")
    assert item.issue_date == "2005-05-02"
    assert item.authorized == () and decision.added_items == ()
    assert decision.preauth_ref is None  # this example has no ClaimResponse.preAuthRef
    assert decision.request_reference == "Claim/ReferralAuthorizationExample"
    assert decision.claim_response_full_url == \
        "http://example.org/fhir/ClaimResponse/PractitionerRequestorResponseExample"
    assert decision.created == "2005-05-02T11:02:00+05:00"
    assert decision.final


def test_pended_example_carries_the_administration_reference() -> None:
    decision = _parse("Bundle-ReferralPendingAuthorizationResponseBundleExample.json")
    assert decision.items[0].administration_reference == "PEND0001"
    assert decision.outcome == "complete"  # pended although the outcome says complete
    assert not decision.final


def test_modification_attaches_the_add_item_to_the_a6_item() -> None:
    decision = _parse("inferno-v221-modification_json_response.json")
    (authorized,) = decision.items[0].authorized
    assert authorized.item_sequences == (1,)
    assert authorized.product_or_service == (Coding("http://www.ama-assn.org/go/cpt", "99213", None),)
    assert (authorized.review_action, authorized.status) == ("A1", ItemStatus.APPROVED)
    assert decision.added_items == ()
    assert decision.preauth_period == Period("2024-01-30", "2024-02-29")
    assert decision.items[0].validity == Period("2024-01-30", "2024-02-29")


def test_processing_error_keeps_the_code_display() -> None:
    decision = _parse("inferno-v221-processing_error_response.json")
    assert decision.errors[0].display == "Authorized Quantity Exceeded"
    assert decision.request_reference == "https://prior-auth.davinci.hl7.org/fhir/Claim/ReferralAuthorizationExample"


def test_notification_reads_the_same_decision_as_its_nested_response_bundle() -> None:
    notification = json.loads(pas_fixture("Bundle-PASSubscriptionNotification.json").read_bytes())
    nested = notification["entry"][1]["resource"]
    assert nested["resourceType"] == "Bundle"
    assert parse_response(notification) == parse_response(nested)


def test_inquiry_parameters_read_the_same_decision_as_the_bundle_inside() -> None:
    parameters = json.loads(pas_fixture("Parameters-PASClaimInquiryOperationResponseExample.json").read_bytes())
    inner = parameters["parameter"][0]["resource"]
    assert parse_response(parameters) == parse_response(inner)


# -- IG package examples ------------------------------------------------------------------------------


def test_ig_additional_content_example_has_a_new_authorized_item() -> None:
    raw = package_example("davinci_pas_2.2.1.tgz",
                          "ClaimResponse-PractitionerRequestorAdditionalContentResponseExample.json")
    decision = parse_response(raw)
    assert decision.status is DecisionStatus.APPROVED
    assert [(i.sequence, i.review_action, i.auth_number) for i in decision.items] == [(1, "A1", "AUTH0001")]
    assert decision.items[0].authorized == ()  # addItem names sequence 2, which was not requested
    (added,) = decision.added_items
    assert added.item_sequences == (2,)
    assert [c.code for c in added.product_or_service] == ["3"]
    assert added.quantity == Quantity(1, None)
    assert (added.review_action, added.auth_number) == ("A1", "AUTH0001")
    assert decision.warnings == ("a bare ClaimResponse, not a PAS response Bundle",)


def test_ig_2_0_1_error_element_is_a_plain_string() -> None:
    decision = parse_response(package_example("davinci_pas_2.0.1.tgz", "ClaimResponse-ErrorResponseExample.json"))
    assert decision.status is DecisionStatus.ERROR
    assert [(e.code, e.element, e.path, e.followup) for e in decision.errors] == [
        ("04", None, None, None), ("T4", "2010A-NM103", "Bundle.entry[1].Organization.name", "C")]


def test_ig_communication_request_becomes_an_information_request() -> None:
    communication = json.loads(package_example("davinci_pas_2.2.1.tgz",
                                               "CommunicationRequest-CommunicationRequestExample.json"))
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "http://example.org/fhir/ClaimResponse/cr1", "resource": {
            "resourceType": "ClaimResponse", "id": "cr1", "outcome": "complete",
            "communicationRequest": [{"reference": "CommunicationRequest/CommunicationRequestExample"}],
            "item": [{"itemSequence": 1, "adjudication": [{"extension": [{
                "url": "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewAction",
                "extension": [{"url": "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewActionCode",
                               "valueCodeableConcept": {"coding": [{"system": X12_306, "code": "A4"}]}}]}]}]}]}},
        {"fullUrl": "http://example.org/fhir/CommunicationRequest/CommunicationRequestExample",
         "resource": communication}]}
    decision = parse_response(bundle)
    (request,) = decision.information_requests
    assert request.id == "CommunicationRequestExample"
    assert request.codes == ("18776-5",)
    assert request.content_modifiers == ("18804-5",)
    assert request.item_sequences == (1,)
    assert request.category == ("15",)
    assert decision.status is DecisionStatus.PENDED and decision.warnings == ()


# -- damaged fixtures: only typed errors, never a crash ---------------------------------------------

JUNK: list[Any] = [None, 0, -1, 1.5, True, "", "x", [], {}, [None], [1, "a"], {"url": 3}, [[[]]], {"coding": "A1"}]


def _containers(node: Any, found: list[Any]) -> list[Any]:
    if isinstance(node, dict | list):
        found.append(node)
        for value in node.values() if isinstance(node, dict) else node:
            _containers(value, found)
    return found


def _damage(document: Any, rng: random.Random) -> None:
    """Replace, drop or re-type one value somewhere in ``document``."""
    target = rng.choice(_containers(document, []))
    if not target:
        return
    if isinstance(target, dict):
        key = rng.choice(list(target))
        if rng.random() < 0.2:
            del target[key]
        else:
            target[key] = copy.deepcopy(rng.choice(JUNK))
    else:
        target[rng.randrange(len(target))] = copy.deepcopy(rng.choice(JUNK))


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_damaged_fixtures_give_a_decision_or_a_typed_error(name: str) -> None:
    original = json.loads(pas_fixture(name).read_bytes())
    rng = random.Random(name)
    outcomes = {"decision": 0, "error": 0}
    for _ in range(120):
        document = copy.deepcopy(original)
        for _ in range(rng.randint(1, 4)):
            _damage(document, rng)
        try:
            decision = parse_response(document)
        except FhirPaError:
            outcomes["error"] += 1
            continue
        json.dumps(decision_as_json(decision))
        outcomes["decision"] += 1
    assert outcomes["decision"] > 0  # most damage is survivable


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_cut_or_corrupted_bytes_give_a_typed_error(name: str) -> None:
    raw = pas_fixture(name).read_bytes()
    rng = random.Random(f"bytes-{name}")
    for _ in range(40):
        cut = raw[: rng.randrange(len(raw.rstrip()))]  # always short of the closing brace
        with pytest.raises(InvalidResponse):
            parse_response(cut)
        flipped = bytearray(raw)
        flipped[rng.randrange(len(raw))] = rng.randrange(256)
        with contextlib.suppress(FhirPaError):  # a flipped byte may still be valid JSON, or a typed error
            assert isinstance(parse_response(bytes(flipped)), PasDecision)

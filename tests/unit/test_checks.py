from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from fhir_pa.errors import ProfileError
from fhir_pa.pas import codes
from fhir_pa.pas.bundle import build_request_bundle
from fhir_pa.pas.checks import check_request_bundle, ensure_valid
from fhir_pa.pas.order import PriorAuthOrder
from tests.conftest import load_fixture

MakeOrder = Callable[..., PriorAuthOrder]


@pytest.fixture
def bundle(make_order: MakeOrder) -> dict[str, Any]:
    return copy.deepcopy(build_request_bundle(make_order(
        attachments=[{"content_type": "text/plain", "data": "aGk="}])).bundle)


def _entry(bundle: dict[str, Any], resource_type: str) -> tuple[int, dict[str, Any]]:
    return next((i, e["resource"]) for i, e in enumerate(bundle["entry"])
                if e["resource"]["resourceType"] == resource_type)


def _rules(bundle: dict[str, Any]) -> dict[str, str]:
    return {issue.rule: issue.path for issue in check_request_bundle(bundle)}


def test_claim_must_come_first(bundle: dict[str, Any]) -> None:
    bundle["entry"].append(bundle["entry"].pop(0))
    assert _rules(bundle)["ClaimFirst"] == "Bundle.entry[0].resource"


def test_not_a_bundle() -> None:
    issues = check_request_bundle({"resourceType": "Claim"})
    assert issues[0].path == "resourceType"


def test_fullurl_must_be_uuid_v4_or_http(bundle: dict[str, Any]) -> None:
    old = bundle["entry"][1]["fullUrl"]
    new = "urn:uuid:00000000-0000-1000-8000-000000000000"  # a version-1 UUID
    bundle["entry"][1]["fullUrl"] = new
    for entry in bundle["entry"]:
        _replace_refs(entry["resource"], old, new)
    assert _rules(bundle)["spec-16"] == "Bundle.entry[1].fullUrl"


def _replace_refs(node: Any, old: str, new: str) -> None:
    if isinstance(node, dict):
        if node.get("reference") == old:
            node["reference"] = new
        for value in node.values():
            _replace_refs(value, old, new)
    elif isinstance(node, list):
        for value in node:
            _replace_refs(value, old, new)


def test_dangling_reference_is_named(bundle: dict[str, Any]) -> None:
    position, _ = _entry(bundle, "Coverage")
    del bundle["entry"][position]
    issues = [i for i in check_request_bundle(bundle) if i.rule == "spec-13"]
    assert any(i.path == "Bundle.entry[0].resource.insurance[0].coverage.reference" for i in issues)


def test_duplicate_resource_makes_reference_ambiguous(bundle: dict[str, Any]) -> None:
    bundle["entry"].append(copy.deepcopy(bundle["entry"][1]))
    rules = _rules(bundle)
    assert "spec-14" in rules


def test_supporting_info_sequences_unique(bundle: dict[str, Any]) -> None:
    claim = bundle["entry"][0]["resource"]
    claim["supportingInfo"].append(copy.deepcopy(claim["supportingInfo"][0]))
    assert _rules(bundle)["spec-22"] == "Bundle.entry[0].resource.supportingInfo"


def test_service_date_must_be_full(bundle: dict[str, Any]) -> None:
    bundle["entry"][0]["resource"]["item"][0]["servicedDate"] = "2026-12"
    assert _rules(bundle)["FullDateRule"] == "Bundle.entry[0].resource.item[0].servicedDate"


def test_birth_date_must_be_full(bundle: dict[str, Any]) -> None:
    position, patient = _entry(bundle, "Patient")
    patient["birthDate"] = "1970"
    assert _rules(bundle)["FullDateRule"] == f"Bundle.entry[{position}].resource.birthDate"


def test_immediate_appeal_needs_level_of_service(bundle: dict[str, Any]) -> None:
    item = bundle["entry"][0]["resource"]["item"][0]
    cert = next(e for e in item["extension"] if e["url"] == codes.EXT_CERTIFICATION_TYPE)
    cert["valueCodeableConcept"]["coding"][0]["code"] = "1"
    assert _rules(bundle)["ImmediateLevelOfCare"] == "Bundle.entry[0].resource.item[0]"


def test_quantity_code_must_be_x12(bundle: dict[str, Any]) -> None:
    bundle["entry"][0]["resource"]["item"][0]["quantity"] = {"value": 1, "system": "http://unitsofmeasure.org",
                                                             "code": "1"}
    assert _rules(bundle)["prof-3"] == "Bundle.entry[0].resource.item[0].quantity"


def test_missing_certification_type_is_a_profile_error(bundle: dict[str, Any]) -> None:
    item = bundle["entry"][0]["resource"]["item"][0]
    item["extension"] = [e for e in item["extension"] if e["url"] != codes.EXT_CERTIFICATION_TYPE]
    with pytest.raises(ProfileError) as err:
        ensure_valid(bundle)
    assert err.value.path == "Bundle.entry[0].resource.item[0].extension"
    assert "certificationType" in err.value.message


def test_fixed_use_value(bundle: dict[str, Any]) -> None:
    bundle["entry"][0]["resource"]["use"] = "claim"
    issues = [i for i in check_request_bundle(bundle) if i.rule == "claim:Claim.use"]
    assert issues and issues[0].path == "Bundle.entry[0].resource.use"


def test_coverage_member_id_slice(bundle: dict[str, Any]) -> None:
    position, coverage = _entry(bundle, "Coverage")
    coverage["identifier"][0]["type"]["coding"][0]["code"] = "XX"
    rules = _rules(bundle)
    assert rules["coverage:Coverage.identifier:memberid"] == f"Bundle.entry[{position}].resource.identifier"


def test_self_beneficiary(bundle: dict[str, Any]) -> None:
    position, coverage = _entry(bundle, "Coverage")
    coverage["relationship"] = {"coding": [{"system": codes.SUBSCRIBER_RELATIONSHIP, "code": "spouse"}]}
    del coverage["subscriber"]
    assert _rules(bundle)["self-beneficiary"] == f"Bundle.entry[{position}].resource.subscriber"


def test_base_structure_is_checked(bundle: dict[str, Any]) -> None:
    bundle["entry"][0]["resource"]["item"][0]["sequence"] = "one"
    assert any(i.rule == "base-R4" and "item" in i.path for i in check_request_bundle(bundle))


@pytest.mark.parametrize("name", [
    "inferno-v221-claim_update_initial_submit_payload.json",
    "inferno-v221-claim_update_add_item_submit_payload.json",
    "inferno-v221-claim_update_modify_cancel_submit_payload.json",
    "inferno-v221-claim_update_cancel_all_submit_payload.json",
    "Bundle-HomecareAuthorizationUpdateBundleExample.json",
])
def test_inferno_and_ig_requests_pass(name: str) -> None:
    assert check_request_bundle(load_fixture("pas", name)) == []


def test_known_ig_defects_are_found() -> None:
    # notes/pas.md §6.9: the IG's ServiceRequest uses a UCUM quantity code, which breaks PAS Quantity prof-3
    issues = check_request_bundle(load_fixture("pas", "Bundle-ReferralAuthorizationBundleExample.json"))
    assert [i.rule for i in issues] == ["prof-3"]
    # The surgical example references a Practitioner and a Location it does not include
    surgical = check_request_bundle(load_fixture("pas", "Bundle-SurgicalRequestBundleExample.json"))
    assert {i.rule for i in surgical} == {"spec-13"}

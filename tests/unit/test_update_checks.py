"""The Inferno Claim Update rules (spec-65..72, cancel-request) on the preset payloads and broken variants."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_pa.errors import InputError, Issue
from fhir_pa.pas import codes
from fhir_pa.pas.checks import check_request_bundle
from fhir_pa.pas.update_checks import check_update_bundle
from fhir_pa.pas.update_diff import EXT_INFO_CANCELLED, EXT_INFO_CHANGED
from tests.conftest import load_fixture

Json = dict[str, Any]
CLAIM = "Bundle.entry[0].resource"


def _step(name: str) -> Json:
    data: Json = copy.deepcopy(load_fixture("pas", f"inferno-v221-claim_update_{name}_submit_payload.json"))
    return data


def _errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity == "error"]


def _one(issues: list[Issue], rule: str) -> Issue:
    found = [i for i in _errors(issues) if i.rule == rule]
    assert len(found) == 1, [str(i) for i in issues]
    assert found[0].path.startswith("Bundle")
    return found[0]


def _item(bundle: Json, sequence: int) -> Json:
    item: Json = next(i for i in bundle["entry"][0]["resource"]["item"] if i["sequence"] == sequence)
    return item


def _set_info_changed(item: Json, code: str) -> None:
    next(e for e in item["extension"] if e["url"] == EXT_INFO_CHANGED)["valueCode"] = code


@pytest.mark.parametrize(("step", "prior", "cancel_all"), [
    ("add_item", "initial", False), ("modify_cancel", "add_item", False), ("cancel_all", "modify_cancel", True)])
def test_inferno_payloads_pass(step: str, prior: str, cancel_all: bool) -> None:
    with_prior = check_update_bundle(_step(step), _step(prior), cancel_all=cancel_all)
    assert _errors(with_prior) == []
    assert _errors(check_update_bundle(_step(step), cancel_all=cancel_all)) == []
    assert _errors(check_request_bundle(_step(step))) == []


def test_leftover_marks_in_the_cancel_all_preset_are_only_warnings() -> None:
    issues = check_update_bundle(_step("cancel_all"), _step("modify_cancel"), cancel_all=True)
    assert {(i.path, i.rule, i.severity) for i in issues} == {
        (f"{CLAIM}.item[0].extension", "spec-71", "warning"), (f"{CLAIM}.item[1].extension", "spec-71", "warning")}


def test_initial_request_is_not_an_update() -> None:
    issue = _one(check_update_bundle(_step("initial")), "spec-65")
    assert issue.path == f"{CLAIM}.related"


def test_grandparent_included() -> None:
    bundle = _step("modify_cancel")
    bundle["entry"].append(_step("initial")["entry"][0])
    issue = _one(check_update_bundle(bundle, _step("add_item")), "spec-66")
    assert issue.path == f"Bundle.entry[{len(bundle['entry']) - 1}]"
    assert "spec-66" in {i.rule for i in check_request_bundle(bundle)}


def test_referenced_claim_missing() -> None:
    bundle = _step("add_item")
    del bundle["entry"][1]
    issues = check_update_bundle(bundle)
    assert _one(issues, "spec-65").path == f"{CLAIM}.related[0].claim.reference"
    assert f"{CLAIM}.related[0].claim.reference" in {i.path for i in issues if i.rule == "spec-67"}


def test_referenced_claim_is_not_the_prior_request() -> None:
    issue = _one(check_update_bundle(_step("modify_cancel"), _step("initial")), "spec-65")
    assert issue.path == f"{CLAIM}.related[0].claim"


def test_other_reference_missing() -> None:
    bundle = _step("add_item")
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Location"]
    issues = _errors(check_update_bundle(bundle, _step("initial")))
    assert issues and {i.rule for i in issues} == {"spec-67"}
    assert all(i.path.startswith("Bundle.entry[") and i.path.endswith(".reference") for i in issues)


def test_item_dropped() -> None:
    bundle = _step("modify_cancel")
    bundle["entry"][0]["resource"]["item"].pop(1)
    issue = _one(check_update_bundle(bundle, _step("add_item")), "spec-68")
    assert issue.path == f"{CLAIM}.item" and "2" in issue.message
    assert "spec-68" in {i.rule for i in check_request_bundle(bundle)}


def test_supporting_info_dropped() -> None:
    bundle = _step("add_item")
    bundle["entry"][0]["resource"]["supportingInfo"].pop(0)
    assert _one(check_update_bundle(bundle, _step("initial")), "spec-68").path == f"{CLAIM}.supportingInfo"


def test_missing_info_cancelled() -> None:
    bundle = _step("modify_cancel")
    del _item(bundle, 2)["modifierExtension"]
    issue = _one(check_update_bundle(bundle, _step("add_item")), "spec-69")
    assert issue.path == f"{CLAIM}.item[1].modifierExtension"


def test_reinstated_item() -> None:
    bundle = _step("cancel_all")
    item = _item(bundle, 2)
    del item["modifierExtension"]
    for ext in item["extension"]:
        if ext["url"] == codes.EXT_CERTIFICATION_TYPE:
            ext["valueCodeableConcept"]["coding"][0]["code"] = "I"
    issue = _one(check_update_bundle(bundle, _step("modify_cancel"), cancel_all=True), "spec-69")
    assert issue.path == f"{CLAIM}.item[1].modifierExtension"


def test_missing_cert_3() -> None:
    bundle = _step("modify_cancel")
    for ext in _item(bundle, 2)["extension"]:
        if ext["url"] == codes.EXT_CERTIFICATION_TYPE:
            ext["valueCodeableConcept"]["coding"][0]["code"] = "I"
    issue = _one(check_update_bundle(bundle, _step("add_item")), "spec-70")
    assert issue.path == f"{CLAIM}.item[1].extension"


def test_added_item_marked_changed() -> None:
    bundle = _step("add_item")
    _set_info_changed(_item(bundle, 2), "changed")
    issue = _one(check_update_bundle(bundle, _step("initial")), "spec-72")
    assert issue.path == f"{CLAIM}.item[1].extension" and "added" in issue.message


def test_info_changed_code_outside_the_value_set() -> None:
    bundle = _step("modify_cancel")
    _set_info_changed(_item(bundle, 1), "modified")
    issues = check_update_bundle(bundle, _step("add_item"))
    assert [i.path for i in _errors(issues) if i.rule == "spec-72"] == [f"{CLAIM}.item[0].extension"]


def test_modified_item_without_info_changed() -> None:
    bundle = _step("modify_cancel")
    item = _item(bundle, 1)
    item["extension"] = [e for e in item["extension"] if e["url"] != EXT_INFO_CHANGED]
    issue = _one(check_update_bundle(bundle, _step("add_item")), "spec-71")
    assert issue.path == f"{CLAIM}.item[0].extension" and "modified" in issue.message


def test_newly_cancelled_item_without_info_changed() -> None:
    bundle = _step("modify_cancel")
    item = _item(bundle, 2)
    item["extension"] = [e for e in item["extension"] if e["url"] != EXT_INFO_CHANGED]
    issue = _one(check_update_bundle(bundle), "spec-71")  # judged against the Claim embedded in the Bundle
    assert issue.path == f"{CLAIM}.item[1].extension" and "newly cancelled" in issue.message


def test_cancel_all_without_claim_level_cancel() -> None:
    bundle = _step("cancel_all")
    claim = bundle["entry"][0]["resource"]
    claim["extension"] = [e for e in claim["extension"] if e["url"] != codes.EXT_CERTIFICATION_TYPE]
    issue = _one(check_update_bundle(bundle, _step("modify_cancel"), cancel_all=True), "cancel-request")
    assert issue.path == f"{CLAIM}.extension"
    assert not [i for i in _errors(check_update_bundle(bundle, _step("modify_cancel"))) if i.rule == "cancel-request"]


def test_every_item_cancelled_without_claim_level_cancel_is_a_warning() -> None:
    bundle = _step("modify_cancel")
    item = _item(bundle, 1)
    item["modifierExtension"] = [{"url": EXT_INFO_CANCELLED, "valueBoolean": True}]
    for ext in item["extension"]:
        if ext["url"] == codes.EXT_CERTIFICATION_TYPE:
            ext["valueCodeableConcept"]["coding"][0]["code"] = "3"
    warnings = [i for i in check_update_bundle(bundle, _step("add_item")) if i.rule == "cancel-request"]
    assert [i.severity for i in warnings] == ["warning"]


def test_request_check_uses_the_claim_update_profile() -> None:
    bundle = _step("add_item")
    del bundle["entry"][0]["resource"]["related"][0]["relationship"]
    paths = {(i.rule, i.path) for i in check_request_bundle(bundle)}
    assert ("claim-update:Claim.related.relationship", f"{CLAIM}.related[0].relationship") in paths


def test_not_a_bundle_and_bad_prior() -> None:
    assert check_update_bundle({"resourceType": "Claim"})[0].rule == "ClaimFirst"
    with pytest.raises(InputError) as err:
        check_update_bundle(_step("add_item"), {"resourceType": "Bundle", "entry": []})
    assert err.value.path == "prior.entry[0].resource"

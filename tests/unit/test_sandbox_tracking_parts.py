"""The sandbox payer's tracking parts on their own: pend rules, updates, inquiries, search tokens, knobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_pa.errors import ConfigurationError
from fhir_pa_sandbox.cases import Case
from fhir_pa_sandbox.inquire import Inquiry, read_inquiry, wrap
from fhir_pa_sandbox.knobs import FaultKnobs, KnobError
from fhir_pa_sandbox.parties import sender_id
from fhir_pa_sandbox.rules import load_rules
from fhir_pa_sandbox.search import token_matches
from fhir_pa_sandbox.updates import UpdateProblem, read_update
from tests.conftest import load_fixture


def _rules(tmp_path: Path, codes: dict[str, Any]) -> Path:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"default": {"action": "approve"}, "codes": codes}), encoding="utf-8")
    return path


# --- pend rules -------------------------------------------------------------------------------------------


def test_packaged_rules_pend_27447_to_approve_and_29881_to_deny() -> None:
    table = load_rules()
    knee, scope = table.codes["27447"], table.codes["29881"]
    assert knee.action == scope.action == "pend"
    assert knee.later().action == "approve" and scope.later().action == "deny"
    assert knee.after_seconds == scope.after_seconds == 2.0
    reason = scope.later().reason
    assert reason is not None and reason.code == "0V"


def test_pend_defaults_to_approve_after_two_seconds(tmp_path: Path) -> None:
    rule = load_rules(_rules(tmp_path, {"27447": {"action": "pend"}})).codes["27447"]
    assert rule.then is not None and rule.later().action == "approve" and rule.after_seconds == 2.0


def test_pend_then_modify_carries_the_authorized_service(tmp_path: Path) -> None:
    pend = {"action": "pend", "then": "modify", "after_seconds": 0.5,
            "authorized": {"code": "E0601", "modifiers": ["RR"]}}
    rule = load_rules(_rules(tmp_path, {"E0601": pend})).codes["E0601"]
    later = rule.later()
    assert later.action == "modify" and later.authorized is not None and later.authorized.modifiers == ("RR",)
    assert rule.after_seconds == 0.5


@pytest.mark.parametrize(("rule", "where", "words"), [
    ({"action": "pend", "then": "pend"}, ".then", "one of"),
    ({"action": "pend", "then": "approve", "after_seconds": -1}, ".after_seconds", "seconds"),
    ({"action": "pend", "then": "approve", "after_seconds": True}, ".after_seconds", "seconds"),
    ({"action": "pend", "then": "modify"}, ".authorized", "required"),
    ({"action": "pend", "then": "deny", "authorized": {"code": "X"}}, ".authorized", "only when"),
    ({"action": "pend", "days": 30}, ".days", "unknown key"),
])
def test_bad_pend_rules_name_the_json_path(rule: dict[str, Any], where: str, words: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as err:
        load_rules(_rules(tmp_path, {"27447": rule}))
    assert str(err.value.path).endswith(where) and words in str(err.value)


# --- Claim Updates (real payloads) -------------------------------------------------------------------------


def test_ig_update_example_cancels_item_2_and_adds_item_3() -> None:
    plan = read_update(load_fixture("pas", "Bundle-HomecareAuthorizationUpdateBundleExample.json"))
    assert plan is not None and not plan.cancel_all
    assert plan.cancelled == {2} and plan.changed == {3}
    assert plan.case_keys[0].endswith("|111099"), "the prior Claim's identifier is tried first"


@pytest.mark.parametrize(("name", "cancel_all", "cancelled", "changed"), [
    ("add_item", False, set(), {2}),
    ("modify_cancel", False, {2}, {1}),
    ("cancel_all", True, {2}, {1}),
])
def test_inferno_update_sequence_is_read(name: str, cancel_all: bool, cancelled: set[int], changed: set[int]) -> None:
    plan = read_update(load_fixture("pas", f"inferno-v221-claim_update_{name}_submit_payload.json"))
    assert plan is not None
    assert (plan.cancel_all, set(plan.cancelled), set(plan.changed)) == (cancel_all, cancelled, changed)


def test_a_first_request_is_not_an_update() -> None:
    assert read_update(load_fixture("pas", "inferno-v221-claim_update_initial_submit_payload.json")) is None


def test_update_whose_prior_claim_is_missing_names_the_reference() -> None:
    bundle = load_fixture("pas", "inferno-v221-claim_update_add_item_submit_payload.json")
    bundle["entry"] = [entry for entry in bundle["entry"][1:] if entry["resource"]["resourceType"] != "Claim"]
    bundle["entry"].insert(0, load_fixture("pas", "inferno-v221-claim_update_add_item_submit_payload.json")["entry"][0])
    with pytest.raises(UpdateProblem) as err:
        read_update(bundle)
    assert err.value.expression == "Bundle.entry[0].resource.related[0].claim.reference"


# --- who a request is from, and $inquire --------------------------------------------------------------------


def test_sender_id_prefers_interchange_sender_then_application_sender() -> None:
    ext = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-TransmissionIdentifiers"
    both = {"extension": [{"url": ext, "extension": [{"url": "applicationSenderCode", "valueString": "APP"},
                                                      {"url": "interchangeSenderID", "valueString": "ISA06"}]}]}
    app_only = {"extension": [{"url": ext, "extension": [{"url": "applicationSenderCode", "valueString": "APP"}]}]}
    assert sender_id(both) == "ISA06" and sender_id(app_only) == "APP" and sender_id({}) is None


def _case(patient: set[str], npis: set[str], numbers: set[str], service_codes: set[str]) -> Case:
    case = Case(key="k", claim_response_id="cr", fhir_base="http://x/fhir", request={}, created="2026-01-01",
                sender_id=None, patient_keys=frozenset(patient), provider_npis=frozenset(npis))
    case.numbers.update(numbers)
    case.service_codes.update(service_codes)
    return case


def test_ig_inquiry_example_yields_patient_provider_and_codes() -> None:
    inquiry = read_inquiry(load_fixture("pas", "Bundle-PASClaimInquiryBundleExample.json"))
    assert isinstance(inquiry, Inquiry)
    assert inquiry.provider_npis and inquiry.patient_keys and inquiry.service_codes
    case = _case(set(inquiry.patient_keys), set(inquiry.provider_npis), set(), set(inquiry.service_codes))
    assert inquiry.matches(case)
    assert not inquiry.matches(_case({"someone-else"}, set(inquiry.provider_npis), set(), set()))
    assert not inquiry.matches(_case(set(inquiry.patient_keys), {"0000000000"}, set(), set()))
    assert not inquiry.matches(_case(set(inquiry.patient_keys), set(inquiry.provider_npis), set(), {"99999"}))


def test_inquiry_numbers_must_be_ones_the_case_was_given() -> None:
    inquiry = Inquiry(frozenset({"M1"}), frozenset({"1"}), frozenset({"PEND-1"}), frozenset())
    assert inquiry.matches(_case({"M1"}, {"1"}, {"PEND-1", "AUTH-2"}, set()))
    assert not inquiry.matches(_case({"M1"}, {"1"}, {"AUTH-2"}, set()))


def test_inquiry_without_a_provider_is_refused_with_its_path() -> None:
    bundle = load_fixture("pas", "Bundle-PASClaimInquiryBundleExample.json")
    del bundle["entry"][0]["resource"]["provider"]
    assert read_inquiry(bundle) == ("the Claim Inquiry must name its provider", "Bundle.entry[0].resource.provider")


@pytest.mark.parametrize("shape", ["return", "responseBundle"])
def test_inquire_answers_wrap_every_match(shape: str) -> None:
    bundles = [{"resourceType": "Bundle", "id": "a"}, {"resourceType": "Bundle", "id": "b"}]
    answer = wrap(bundles, shape)
    assert [(p["name"], p["resource"]["id"]) for p in answer["parameter"]] == [(shape, "a"), (shape, "b")]
    assert wrap(bundles, "bare")["id"] == "a"


# --- search tokens -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("token", "hit"), [
    ("urn:trn|T1", True), ("T1", True), ("urn:other|T1", False), ("|T1", False), ("T2,T1", True), ("T2", False),
])
def test_search_tokens(token: str, hit: bool) -> None:
    assert token_matches(token, ["urn:trn|T1"]) is hit
    assert token_matches("|T9", ["|T9"])


# --- fault knobs for tracking ------------------------------------------------------------------------------


def test_notification_knobs_are_used_up_in_order() -> None:
    knobs = FaultKnobs()
    knobs.apply({"drop_notifications": 1, "duplicate_notifications": 1, "reorder_notifications": 1})
    assert [knobs.notification_fate() for _ in range(4)] == ["drop", "duplicate", "hold", "send"]


def test_shapes_and_reset() -> None:
    knobs = FaultKnobs()
    knobs.apply({"notification_shape": "ri", "inquire_shape": "bare"})
    assert knobs.shapes() == ("ri", "bare")
    knobs.apply({"reset": True})
    assert knobs.shapes() == ("pas-2.2", "return")


def test_error_rate_is_repeatable_with_a_seed() -> None:
    def run() -> list[bool]:
        knobs = FaultKnobs()
        knobs.apply({"error_rate": 0.5, "seed": 42})
        return [knobs.take() is not None for _ in range(40)]

    first = run()
    assert first == run() and any(first) and not all(first)


@pytest.mark.parametrize(("command", "words"), [
    ({"error_rate": 1.5}, "error_rate"), ({"error_rate": "half"}, "error_rate"),
    ({"drop_notifications": -1}, "drop_notifications"), ({"notification_shape": "xml"}, "notification_shape"),
    ({"inquire_shape": "list"}, "inquire_shape"), ({"seed": 1.5}, "seed"), ({"reorder": 1}, "unknown key"),
])
def test_bad_knobs_are_refused_by_name(command: dict[str, Any], words: str) -> None:
    knobs = FaultKnobs()
    with pytest.raises(KnobError, match=words):
        knobs.apply(command)
    assert knobs.snapshot()["error_rate"] == 0.0, "nothing applied"

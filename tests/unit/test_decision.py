"""Every PAS response in the shared fixtures, explained; plus the status rules on hand-made responses."""

from __future__ import annotations

import json
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from fhir_pa.cli import explain
from fhir_pa.errors import InvalidResponse
from fhir_pa.pas import codes
from fhir_pa.pas.decision import DecisionStatus, decision_as_json, parse_response
from tests.conftest import fixture_path, load_fixture

# file → (overall status, [(item sequence, review action, auth number)], [(error code, error path)])
EXPECTED: dict[str, tuple[str, list[tuple[int, str, str | None]], list[tuple[str, str | None]]]] = {
    "Bundle-ReferralAuthorizationResponseBundleExample.json": ("approved", [(1, "A1", "AUTH0001")], []),
    "Bundle-ReferralPendingAuthorizationResponseBundleExample.json": ("pended", [(1, "A4", None)], []),
    "Bundle-RejectionResponseBundleExample.json": ("denied", [(1, "A3", None)], []),
    "Bundle-ErrorResponseBundleExample.json": (
        "error", [], [("04", None), ("T4", "Bundle.entry[1].Organization.name")]),
    "inferno-v221-modification_json_response.json": ("modified", [(1, "A6", None)], []),
    "inferno-v221-processing_error_response.json": ("error", [], [("04", None)]),
    "Bundle-PASSubscriptionNotification.json": ("approved", [(1, "A1", "AUTH0001")], []),
    "Parameters-PASClaimInquiryOperationResponseExample.json": ("approved", [(1, "A1", "AUTH0001")], []),
    # 2.0.1-era notification: outcome queued, a placeholder code whose display says "Pended"
    "PAS_notification_example_full_resource.json": ("pended", [(1, "A4", None)], []),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_responses(name: str) -> None:
    status, items, errors = EXPECTED[name]
    decision = parse_response(fixture_path("pas", name).read_bytes(), source=name)
    assert decision.status.value == status
    assert [(i.sequence, i.review_action, i.auth_number) for i in decision.items] == items
    assert [(e.code, e.path) for e in decision.errors][: len(errors)] == errors
    assert len(decision.errors) >= len(errors)


def test_pended_example_carries_administration_reference() -> None:
    decision = parse_response(load_fixture("pas", "Bundle-ReferralPendingAuthorizationResponseBundleExample.json"))
    assert decision.items[0].administration_reference == "PEND0001"
    assert decision.outcome == "complete" and not decision.final


def test_modification_attaches_add_item_to_the_a6_item() -> None:
    decision = parse_response(load_fixture("pas", "inferno-v221-modification_json_response.json"))
    authorized = decision.items[0].authorized
    assert authorized and authorized[0].review_action == "A1" and authorized[0].item_sequences == (1,)
    assert decision.added_items == ()


def test_operation_outcome_is_an_invalid_response() -> None:
    with pytest.raises(InvalidResponse, match="OperationOutcome"):
        parse_response(load_fixture("pas", "OperationOutcome-InvalidRequestResponse.json"))


def _response(*actions: str, outcome: str = "complete", add_item: list[Any] | None = None) -> dict[str, Any]:
    def adjudication(code: str, system: str = codes.X12_REVIEW_ACTION) -> list[dict[str, Any]]:
        return [{"extension": [{"url": codes.EXT_REVIEW_ACTION, "extension": [
            {"url": codes.EXT_REVIEW_ACTION_CODE, "valueCodeableConcept": {"coding": [{"system": system,
                                                                                        "code": code}]}}]}]}]
    response: dict[str, Any] = {"resourceType": "ClaimResponse", "outcome": outcome,
                                "item": [{"itemSequence": n, "adjudication": adjudication(a)}
                                         for n, a in enumerate(actions, start=1)]}
    if add_item is not None:
        response["addItem"] = add_item
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": response}]}


@pytest.mark.parametrize(("actions", "status"), [
    (("A1", "A1"), "approved"), (("A3",), "denied"), (("A1", "A4"), "pended"), (("A1", "A3"), "partial"),
    (("A2",), "partial"), (("A6", "A1"), "modified"), (("C", "C"), "cancelled"), ((), "unknown"),
])
def test_status_rules(actions: tuple[str, ...], status: str) -> None:
    assert parse_response(_response(*actions)).status.value == status


def test_queued_outcome_never_means_pended() -> None:
    decision = parse_response(_response("A1", outcome="queued"))
    assert decision.status is DecisionStatus.APPROVED
    assert any("queued" in w for w in decision.warnings)


def test_reference_server_system_url_is_matched_by_value() -> None:
    bundle = _response("A3")
    coding = bundle["entry"][0]["resource"]["item"][0]["adjudication"][0]["extension"][0]["extension"][0]
    coding["valueCodeableConcept"]["coding"][0]["system"] = \
        "https://valueset.x12.org/x217/005010/response/2000F/HCR/1/01/00/306"
    assert parse_response(bundle).status is DecisionStatus.DENIED


def test_unmatched_add_item_is_a_new_authorized_item() -> None:
    decision = parse_response(_response("A1", add_item=[{"itemSequence": [9], "productOrService": {
        "coding": [{"code": "97110"}]}}]))
    assert decision.added_items[0].item_sequences == (9,)
    assert decision.items[0].authorized == ()


@pytest.mark.parametrize("raw", [b'{"resourceType": "Bundle", "ent', b"<html>busy</html>", b"[1, 2]",
                                 b'{"resourceType": "Patient"}', b'{"resourceType": "Bundle", "entry": []}'])
def test_non_responses_are_typed_errors(raw: bytes) -> None:
    with pytest.raises(InvalidResponse):
        parse_response(raw)


def test_malformed_shapes_never_crash() -> None:
    bundle = _response("A1")
    response = bundle["entry"][0]["resource"]
    for key, junk in (("item", "x"), ("addItem", 3), ("error", {"a": 1}), ("processNote", [1, None])):
        broken = json.loads(json.dumps(bundle))
        broken["entry"][0]["resource"][key] = junk
        parse_response(broken)  # must not raise anything but InvalidResponse
    response["item"][0]["adjudication"] = [{"extension": "nope"}]
    assert parse_response(bundle).status is DecisionStatus.UNKNOWN


def test_explain_cli_json() -> None:
    path = fixture_path("pas", "Bundle-ErrorResponseBundleExample.json")
    app = typer.Typer()
    explain.register(app)
    app.command("noop")(lambda: None)  # a second command keeps Typer in sub-command mode
    result = CliRunner().invoke(app, ["explain", str(path), "--json"])
    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    assert view["status"] == "error" and {"code": "04", "path": None}.items() <= view["errors"][0].items()
    assert set(view) >= {"status", "preauth_ref", "items", "errors"}
    assert decision_as_json(parse_response(path.read_bytes()))["errors"] == view["errors"]

"""Applying coverage-information updates: only the extension lands, on a copy; wrong targets are refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_pa.crd.apply import apply_coverage_information, auto_applicable
from fhir_pa.crd.cards import parse_hook_response
from fhir_pa.crd.coverage_info import EXT_COVERAGE_INFORMATION
from fhir_pa.errors import InputError

OTHER_EXT = {"url": "http://ehr.example/ext/priority-flag", "valueBoolean": True}


def _ci(assertion: str) -> dict[str, Any]:
    parts = [{"url": "covered", "valueCode": "covered"}, {"url": "coverage-assertion-id", "valueString": assertion}]
    return {"url": EXT_COVERAGE_INFORMATION, "extension": parts}


def _order() -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "note": [{"text": "edited by user"}],
            "extension": [OTHER_EXT, _ci("OLD-1"), _ci("OLD-2")]}


def _update(rid: str = "sr-1", resource_type: str = "ServiceRequest") -> dict[str, Any]:
    return {"resourceType": resource_type, "id": rid, "status": "active", "note": [{"text": "payer's stale copy"}],
            "extension": [{"url": "http://payer.example/ext/internal", "valueString": "x"}, _ci("NEW-1")]}


def test_only_the_coverage_information_lands_and_old_ones_are_replaced() -> None:
    order = _order()
    before = copy.deepcopy(order)
    result = apply_coverage_information(order, _update())
    assert result["extension"] == [OTHER_EXT, _ci("NEW-1")]
    assert result["status"] == "draft" and result["note"] == [{"text": "edited by user"}]
    assert order == before  # the caller's order is untouched


def test_the_result_shares_nothing_with_the_update() -> None:
    update = _update()
    result = apply_coverage_information(_order(), update)
    update["extension"][1]["extension"][0]["valueCode"] = "not-covered"
    assert result["extension"][1]["extension"][0]["valueCode"] == "covered"


def test_an_order_without_extensions_gets_them() -> None:
    result = apply_coverage_information({"resourceType": "ServiceRequest", "id": "sr-1"}, _update())
    assert result["extension"] == [_ci("NEW-1")]


def test_placeholder_id_matches_and_an_action_object_or_parsed_action_is_accepted() -> None:
    action = {"type": "update", "resource": _update("idfromcontext")}
    assert apply_coverage_information(_order(), action)["extension"][-1] == _ci("NEW-1")
    parsed = parse_hook_response({"cards": [], "systemActions": [action]}).system_actions[0]
    assert apply_coverage_information(_order(), parsed)["extension"] == [OTHER_EXT, _ci("NEW-1")]


@pytest.mark.parametrize(
    ("update", "path", "needle"),
    [
        (_update(resource_type="DeviceRequest"), "resource.resourceType", "for a 'DeviceRequest'"),
        (_update("sr-2"), "resource.id", "another ServiceRequest"),
        ({"resourceType": "ServiceRequest", "id": "sr-1", "extension": [OTHER_EXT]}, "resource.extension",
         "no coverage-information"),
        ({"type": "create", "resource": _update()}, "type", "not an update"),
    ],
)
def test_wrong_updates_are_refused_with_a_path(update: dict[str, Any], path: str, needle: str) -> None:
    with pytest.raises(InputError) as caught:
        apply_coverage_information(_order(), update)
    assert caught.value.path == path and needle in caught.value.message


def test_a_malformed_order_is_refused() -> None:
    with pytest.raises(InputError) as caught:
        apply_coverage_information({"resourceType": "ServiceRequest", "id": "sr-1", "extension": {}}, _update())
    assert caught.value.path == "ServiceRequest.extension"
    with pytest.raises(InputError) as no_type:
        apply_coverage_information({"id": "sr-1"}, _update())
    assert no_type.value.path == "resourceType"


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ({"type": "update", "resource": _update()}, True),
        ({"type": "update", "resource": {"resourceType": "ServiceRequest", "id": "1", "extension": [OTHER_EXT]}},
         False),
        ({"type": "create", "resource": {"resourceType": "Coverage", "id": "c", "extension": [_ci("X")]}}, False),
        ({"type": "create", "resource": _update()}, False),
        ({"type": "delete", "resourceId": "ServiceRequest/sr-1"}, False),
        ({"type": "update", "resource": {"resourceType": "Coverage", "id": "c", "extension": [_ci("X")]}}, False),
        ({"type": "update"}, False),
    ],
)
def test_auto_applicable_only_for_coverage_information_updates(action: dict[str, Any], expected: bool) -> None:
    assert auto_applicable(action) is expected
    (parsed,) = parse_hook_response({"cards": [], "systemActions": [action]}).system_actions
    assert auto_applicable(parsed) is expected

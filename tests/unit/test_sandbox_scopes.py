"""SMART scope parsing and coverage as the sandbox applies them."""

from __future__ import annotations

import pytest

from fhir_pa_sandbox.scopes import grantable, parse_scope, permits


@pytest.mark.parametrize(("text", "perms"), [
    ("system/Claim.c", "c"), ("system/Claim.cruds", "cruds"), ("system/Claim.write", "cud"),
    ("system/Claim.read", "rs"), ("system/*.*", "cruds"), ("system/ClaimResponse.rs", "rs"),
])
def test_parse_scope_forms(text: str, perms: str) -> None:
    scope = parse_scope(text)
    assert scope is not None and scope.permissions == frozenset(perms)


@pytest.mark.parametrize("text", ["openid", "system/Claim", "system/Claim.", "system/Claim.dc", "system/claim.c",
                                  "other/Claim.c", "system/Claim.x"])
def test_parse_scope_refuses_non_resource_scopes(text: str) -> None:
    assert parse_scope(text) is None


def test_grantable_keeps_request_order_and_only_covered_scopes() -> None:
    registered = ["system/Claim.cruds", "system/ClaimResponse.r"]
    requested = ["system/ClaimResponse.rs", "system/Claim.c", "system/Claim.c", "system/Patient.r", "bogus"]
    assert grantable(requested, registered) == ["system/Claim.c"]
    assert grantable(["system/Claim.write"], ["system/*.cud"]) == ["system/Claim.write"]


def test_permits_needs_a_system_scope_covering_the_permission() -> None:
    assert permits(["system/Claim.c"], "Claim", "c")
    assert permits(["system/Claim.cruds"], "Claim", "c")
    assert permits(["system/*.write"], "Claim", "c")
    assert not permits(["system/Claim.r"], "Claim", "c")
    assert not permits(["user/Claim.c"], "Claim", "c")
    assert not permits(["system/ClaimResponse.c"], "Claim", "c")
    assert not permits(["system/Claim.c?status=active"], "Claim", "c")

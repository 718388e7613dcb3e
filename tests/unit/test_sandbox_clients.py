"""Sandbox client registrations: the clients file format and its errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey

from fhir_pa.errors import ConfigurationError
from fhir_pa_sandbox.clients import ClientRegistry, load_clients, registration


def _public_jwks(kid: str = "k1") -> dict[str, Any]:
    key = ECKey.generate_key("P-384", parameters={"kid": kid, "alg": "ES384"})
    return {"keys": [key.as_dict(private=False)]}


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "clients.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_packaged_clients_file_loads() -> None:
    assert isinstance(load_clients(), list)


def test_inline_and_relative_jwks_path(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "jwks.json").write_text(json.dumps(_public_jwks("k2")), encoding="utf-8")
    path = _write(tmp_path, {"clients": {
        "inline": {"jwks": _public_jwks(), "scopes": ["system/Claim.c"]},
        "by-path": {"jwks_path": "keys/jwks.json", "scopes": ["system/Claim.cruds", "system/ClaimResponse.r"]},
    }})
    registry = ClientRegistry(load_clients(path))
    assert len(registry) == 2
    by_path = registry.get("by-path")
    assert by_path is not None and by_path.jwks["keys"][0]["kid"] == "k2"
    assert by_path.scopes == ("system/Claim.cruds", "system/ClaimResponse.r")
    assert registry.get("nobody") is None


@pytest.mark.parametrize(("client", "where", "words"), [
    ({"scopes": ["system/Claim.c"]}, "$.clients.me", "exactly one of"),
    ({"jwks": {"keys": []}, "scopes": ["system/Claim.c"]}, "$.clients.me.jwks", "non-empty"),
    ({"jwks": {"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]}, "scopes": ["system/Claim.c"]},
     "$.clients.me.jwks.keys[0].kid", "kid"),
    ({"jwks_path": "missing.json", "scopes": ["system/Claim.c"]}, "$.clients.me.jwks_path", "cannot read"),
    ({"jwks": "PRIVATE", "scopes": ["system/Claim.c"]}, "$.clients.me.jwks", "JWKS"),
    ({"jwks": {"keys": [{"kty": "EC"}]}, "scopes": ["system/Claim.c"], "extra": 1}, "$.clients.me.extra",
     "unknown key"),
])
def test_bad_client_entries_name_the_file_and_path(client: dict[str, Any], where: str, words: str,
                                                   tmp_path: Path) -> None:
    path = _write(tmp_path, {"clients": {"me": client}})
    with pytest.raises(ConfigurationError) as err:
        load_clients(path)
    assert err.value.path == where and words in err.value.message and str(path) in err.value.message


def test_scopes_are_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, {"clients": {"me": {"jwks": _public_jwks(), "scopes": ["system/Claim.c", "Claim.c"]}}})
    with pytest.raises(ConfigurationError) as err:
        load_clients(path)
    assert err.value.path == "$.clients.me.scopes[1]"


def test_private_keys_are_never_registered() -> None:
    key = ECKey.generate_key("P-384", parameters={"kid": "k"})
    with pytest.raises(ConfigurationError, match="private") as err:
        registration("c", {"keys": [key.as_dict(private=True)]}, ["system/Claim.c"])
    secret = str(key.as_dict(private=True)["d"])
    assert secret not in str(err.value)  # the secret never lands in a message

"""Reading what a SMART server sends back: the discovery document and the token response."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fhir_pa.auth.discovery import parse_smart_configuration, smart_configuration_url
from fhir_pa.auth.token import AccessToken, parse_token_response
from fhir_pa.errors import DiscoveryError, TokenError

SRC = "https://payer.test/fhir/.well-known/smart-configuration"
NOW = 1_800_000_000.0
SCOPES = ("system/Claim.c", "system/ClaimResponse.rs")


# --- discovery --------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["https://payer.test/fhir", "https://payer.test/fhir/"])
def test_smart_configuration_url(base: str) -> None:
    assert smart_configuration_url(base) == SRC


def test_full_configuration() -> None:
    config = parse_smart_configuration({
        "token_endpoint": "https://payer.test/token",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": ["system/Claim.c"],
        "capabilities": ["client-confidential-asymmetric", "permission-v2"],
    }, source=SRC)
    assert config.token_endpoint == "https://payer.test/token"
    assert config.grant_types_supported == ("client_credentials",)
    assert config.token_endpoint_auth_signing_alg_values_supported == ("RS384", "ES384")
    assert config.capabilities == ("client-confidential-asymmetric", "permission-v2")


def test_optional_fields_are_lenient() -> None:
    config = parse_smart_configuration({"token_endpoint": "http://127.0.0.1:8080/token", "capabilities": "oops",
                                        "scopes_supported": ["a", 3, None, "b"]}, source=SRC)
    assert config.capabilities == () and config.grant_types_supported == ()
    assert config.scopes_supported == ("a", "b")


@pytest.mark.parametrize("doc", [{}, {"token_endpoint": 7}, {"token_endpoint": "/relative/token"}, [], "text"])
def test_unusable_configuration(doc: Any) -> None:
    with pytest.raises(DiscoveryError) as err:
        parse_smart_configuration(doc, source=SRC)
    assert SRC in str(err.value)


# --- token responses ---------------------------------------------------------------------------------


def _body(**fields: Any) -> bytes:
    data: dict[str, Any] = {"access_token": "tok-1", "token_type": "bearer", "expires_in": 300,
                            "scope": "system/Claim.c"}
    data.update(fields)
    return json.dumps({k: v for k, v in data.items() if v is not None}).encode()


@pytest.mark.parametrize("token_type", ["bearer", "Bearer", "BEARER"])
def test_token_type_is_case_insensitive(token_type: str) -> None:
    token = parse_token_response(200, _body(token_type=token_type), requested_scopes=SCOPES, now=NOW)
    assert (token.value, token.token_type, token.expires_at) == ("tok-1", "Bearer", NOW + 300)
    assert token.scope == ("system/Claim.c",)


def test_missing_scope_means_what_was_asked_and_string_expiry_is_read() -> None:
    token = parse_token_response(200, _body(scope=None, expires_in="120"), requested_scopes=SCOPES, now=NOW)
    assert token.scope == SCOPES and token.expires_at == NOW + 120


def test_missing_expires_in_defaults_to_five_minutes() -> None:
    assert parse_token_response(200, _body(expires_in=None), requested_scopes=SCOPES, now=0.0).expires_at == 300


def test_oauth_error_is_carried() -> None:
    body = json.dumps({"error": "invalid_client", "error_description": "kid not registered"}).encode()
    with pytest.raises(TokenError) as err:
        parse_token_response(401, body, requested_scopes=SCOPES)
    assert (err.value.status, err.value.error, err.value.description) == (401, "invalid_client",
                                                                         "kid not registered")
    assert "invalid_client" in str(err.value) and "401" in str(err.value)


def test_error_text_from_the_server_is_bounded_and_never_echoes_a_jwt() -> None:
    jwt_like = "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJjIn0.c2lnbmF0dXJlc2lnbmF0dXJl"
    body = json.dumps({"error": "invalid_client", "error_description": f"bad assertion {jwt_like} " + "x" * 900})
    with pytest.raises(TokenError) as err:
        parse_token_response(400, body.encode(), requested_scopes=SCOPES)
    assert jwt_like not in str(err.value) and "[redacted]" in str(err.value)
    assert err.value.description is not None and len(err.value.description) <= 301


@pytest.mark.parametrize(("status", "body", "words"), [
    (503, b"<html>down</html>", "refused"),
    (200, b"<html>login</html>", "not a JSON object"),
    (200, b"[]", "not a JSON object"),
    (200, json.dumps({"token_type": "bearer"}).encode(), "no access_token"),
    (200, _body(token_type="mac"), "not bearer"),
    (200, _body(token_type=None), "not bearer"),
    (200, _body(expires_in=-5), "expires_in"),
    (200, _body(expires_in="soon"), "expires_in"),
])
def test_nonsense_answers_are_token_errors(status: int, body: bytes, words: str) -> None:
    with pytest.raises(TokenError, match=words) as err:
        parse_token_response(status, body, requested_scopes=SCOPES)
    assert err.value.status == status and "tok-1" not in str(err.value)


def test_freshness_honours_leeway_but_not_beyond_half_the_lifetime() -> None:
    five_minutes = AccessToken("t", "Bearer", expires_at=NOW + 300, scope=(), lifetime=300)
    assert five_minutes.is_fresh(NOW + 269, leeway=30)
    assert not five_minutes.is_fresh(NOW + 271, leeway=30)
    twenty_seconds = AccessToken("t", "Bearer", expires_at=NOW + 20, scope=(), lifetime=20)
    assert twenty_seconds.is_fresh(NOW + 9, leeway=30)
    assert not twenty_seconds.is_fresh(NOW + 11, leeway=30)


def test_token_repr_hides_the_value() -> None:
    token = parse_token_response(200, _body(access_token="very-secret-token"), requested_scopes=SCOPES)
    assert "very-secret-token" not in repr(token)

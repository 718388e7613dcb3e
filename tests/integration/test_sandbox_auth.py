"""The sandbox's SMART Backend Services side over a real loopback port: discovery, tokens, refusals."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from fhir_pa.auth.assertion import client_assertion
from fhir_pa.auth.keys import SigningKey, generate_key, public_jwks
from fhir_pa_sandbox.config import SandboxConfig
from fhir_pa_sandbox.server import SandboxServer
from tests.integration.conftest import stats
from tests.integration.pas_bundles import request_bundle
from tests.integration.sandbox_helpers import JWT_BEARER, get_token, new_client, submit, token_request

pytestmark = pytest.mark.integration


def _oauth_error(response: httpx.Response, status: int, error: str) -> str:
    """Assert ``response`` is an RFC 6749 error answer; return its description."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str) and body["error_description"]
    return str(body["error_description"])


# --- discovery -------------------------------------------------------------------------------------


def test_smart_configuration_advertises_backend_services(sandbox: SandboxServer) -> None:
    response = httpx.get(f"{sandbox.fhir_base}/.well-known/smart-configuration")
    assert response.status_code == 200
    config = response.json()
    assert config["token_endpoint"] == sandbox.token_url == f"{sandbox.base_url}/auth/token"
    assert config["grant_types_supported"] == ["client_credentials"]
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert {"client-confidential-asymmetric", "permission-v2"} <= set(config["capabilities"])
    assert "system/Claim.c" in config["scopes_supported"]


def test_metadata_lists_claim_submit(sandbox: SandboxServer) -> None:
    response = httpx.get(f"{sandbox.fhir_base}/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert resources["Claim"]["operation"][0] == {
        "name": "submit", "definition": "http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-submit"}
    assert {"code": "read"} in resources["ClaimResponse"]["interaction"]


# --- the token endpoint ----------------------------------------------------------------------------


def test_token_grants_requested_scopes_the_registration_covers(sandbox: SandboxServer,
                                                               client_key: SigningKey) -> None:
    client_id = new_client(sandbox, client_key)
    before = stats(sandbox)["tokens_issued"]
    assertion = client_assertion(client_key, client_id=client_id, audience=sandbox.token_url)
    response = token_request(sandbox, assertion, scope="system/Claim.c system/Patient.r system/ClaimResponse.r")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"].lower() == "bearer"
    assert body["expires_in"] == 300
    assert body["scope"].split() == ["system/Claim.c", "system/ClaimResponse.r"]  # Patient.r not registered
    assert len(body["access_token"]) >= 32
    assert stats(sandbox)["tokens_issued"] == before + 1  # type: ignore[operator]


def test_v2_registration_covers_narrower_and_v1_requests(sandbox: SandboxServer, client_key: SigningKey) -> None:
    client_id = new_client(sandbox, client_key, scopes=["system/Claim.cruds", "system/*.rs"])
    assertion = client_assertion(client_key, client_id=client_id, audience=sandbox.token_url)
    response = token_request(sandbox, assertion, scope="system/Claim.write system/ClaimResponse.read")
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "system/Claim.write system/ClaimResponse.read"


def test_no_grantable_scope_is_invalid_scope(sandbox: SandboxServer, client_key: SigningKey) -> None:
    client_id = new_client(sandbox, client_key, scopes=["system/ClaimResponse.r"])
    assertion = client_assertion(client_key, client_id=client_id, audience=sandbox.token_url)
    _oauth_error(token_request(sandbox, assertion, scope="system/Claim.c"), 400, "invalid_scope")


def test_expired_assertion_is_invalid_client(sandbox: SandboxServer, client_key: SigningKey) -> None:
    client_id = new_client(sandbox, client_key)
    stale = client_assertion(client_key, client_id=client_id, audience=sandbox.token_url, lifetime=60,
                             now=time.time() - 3600)
    _oauth_error(token_request(sandbox, stale), 401, "invalid_client")


def test_replayed_jti_is_refused(sandbox: SandboxServer, client_key: SigningKey) -> None:
    client_id = new_client(sandbox, client_key)
    assertion = client_assertion(client_key, client_id=client_id, audience=sandbox.token_url)
    assert token_request(sandbox, assertion).status_code == 200
    _oauth_error(token_request(sandbox, assertion), 401, "invalid_client")


def test_other_key_under_the_registered_kid_is_refused(sandbox: SandboxServer, client_key: SigningKey) -> None:
    impostor = generate_key("ES384")
    registered = public_jwks(client_key)
    forged = impostor.public_jwk()
    forged["kid"] = registered["keys"][0]["kid"]  # same kid, other key material
    client_id = new_client(sandbox, client_key)
    sandbox.register_client(client_id, {"keys": [forged]}, ["system/Claim.c"])
    assertion = client_assertion(client_key, client_id=client_id, audience=sandbox.token_url)
    _oauth_error(token_request(sandbox, assertion), 401, "invalid_client")


def test_wrong_audience_is_refused(sandbox: SandboxServer, client_key: SigningKey) -> None:
    client_id = new_client(sandbox, client_key)
    assertion = client_assertion(client_key, client_id=client_id, audience=f"{sandbox.fhir_base}/token")
    _oauth_error(token_request(sandbox, assertion), 401, "invalid_client")


def test_unknown_client_is_refused(sandbox: SandboxServer, client_key: SigningKey) -> None:
    assertion = client_assertion(client_key, client_id="nobody-registered-this", audience=sandbox.token_url)
    description = _oauth_error(token_request(sandbox, assertion), 401, "invalid_client")
    assert "unknown client" in description


def test_wrong_grant_type_is_unsupported(sandbox: SandboxServer, client_key: SigningKey) -> None:
    client_id = new_client(sandbox, client_key)
    assertion = client_assertion(client_key, client_id=client_id, audience=sandbox.token_url)
    _oauth_error(token_request(sandbox, assertion, grant_type="authorization_code"), 400, "unsupported_grant_type")


def test_wrong_assertion_type_and_malformed_requests(sandbox: SandboxServer, client_key: SigningKey) -> None:
    client_id = new_client(sandbox, client_key)
    assertion = client_assertion(client_key, client_id=client_id, audience=sandbox.token_url)
    _oauth_error(token_request(sandbox, assertion, assertion_type="urn:example:other"), 401, "invalid_client")
    _oauth_error(token_request(sandbox, "not.a-jwt"), 401, "invalid_client")
    as_json = httpx.post(sandbox.token_url, json={"grant_type": "client_credentials"})
    _oauth_error(as_json, 400, "invalid_request")
    twice = httpx.post(sandbox.token_url, content=b"grant_type=client_credentials&grant_type=client_credentials",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    _oauth_error(twice, 400, "invalid_request")
    assert JWT_BEARER.startswith("urn:ietf:params:oauth")


# --- bearer tokens on FHIR calls ---------------------------------------------------------------------


def _assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.headers["www-authenticate"].startswith("Bearer ")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["severity"] == "error"


def test_missing_or_unknown_bearer_is_401(sandbox: SandboxServer) -> None:
    _assert_unauthorized(submit(sandbox, None, request_bundle()))
    _assert_unauthorized(submit(sandbox, "made-up-token", request_bundle()))
    _assert_unauthorized(httpx.get(f"{sandbox.fhir_base}/ClaimResponse/anything",
                                   headers={"Authorization": "Basic dXNlcjpwdw=="}))


def test_insufficient_scope_is_403(sandbox: SandboxServer, client_key: SigningKey) -> None:
    reader = new_client(sandbox, client_key, scopes=["system/ClaimResponse.r"])
    token = get_token(sandbox, client_key, reader, scope="system/ClaimResponse.r")
    response = submit(sandbox, token, request_bundle())
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert response.json()["issue"][0]["code"] == "forbidden"
    assert "system/Claim.c" in response.json()["issue"][0]["diagnostics"]

    writer = new_client(sandbox, client_key, scopes=["system/Claim.c"])
    token = get_token(sandbox, client_key, writer, scope="system/Claim.c")
    read = httpx.get(f"{sandbox.fhir_base}/ClaimResponse/x", headers={"Authorization": f"Bearer {token}"})
    assert read.status_code == 403


class _Clock:
    """Real time plus an offset a test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clocked() -> Iterator[tuple[SandboxServer, _Clock]]:
    clock = _Clock()
    with SandboxServer(SandboxConfig(clock=clock, token_lifetime=120)) as server:
        yield server, clock


def test_expired_bearer_is_401(clocked: tuple[SandboxServer, _Clock], client_key: SigningKey) -> None:
    server, clock = clocked
    client_id = new_client(server, client_key)
    assertion = client_assertion(client_key, client_id=client_id, audience=server.token_url)
    issued = token_request(server, assertion)
    assert issued.json()["expires_in"] == 120
    token = issued.json()["access_token"]
    bundle = request_bundle()
    assert submit(server, token, bundle).status_code == 200
    clock.offset = 121
    expired = submit(server, token, bundle)
    _assert_unauthorized(expired)
    assert "expired" in expired.headers["www-authenticate"]

"""The sandbox's test knobs over a real loopback port: injected faults, latency, stats, client registration."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from fhir_pa.auth.assertion import client_assertion
from fhir_pa.auth.keys import SigningKey, generate_key, public_jwks
from fhir_pa_sandbox.server import SandboxServer
from tests.integration.conftest import set_faults, stats
from tests.integration.pas_bundles import bundle_key, request_bundle
from tests.integration.sandbox_helpers import get_token, new_client, submit, token_request

pytestmark = pytest.mark.integration


@pytest.fixture
def token(sandbox: SandboxServer, client_key: SigningKey) -> str:
    return get_token(sandbox, client_key, new_client(sandbox, client_key))


def test_fail_next_answers_the_status_with_no_body_before_any_processing(sandbox: SandboxServer,
                                                                          token: str) -> None:
    bundle = request_bundle()
    injected = stats(sandbox)["faults_injected"]
    set_faults(sandbox, fail_next=2, status=503, retry_after=1)
    for _ in range(2):
        failed = submit(sandbox, token, bundle)
        assert failed.status_code == 503 and failed.content == b""  # a 5xx carries no OperationOutcome
        assert failed.headers["retry-after"] == "1"
    # faults come before the token check too
    set_faults(sandbox, fail_next=1, status=502)
    assert submit(sandbox, None, bundle).status_code == 502
    assert submit(sandbox, token, bundle).status_code == 200
    after = stats(sandbox)
    assert after["faults_injected"] == injected + 3  # type: ignore[operator]
    assert after["by_identifier"][bundle_key(bundle)]["received"] == 1  # type: ignore[index]


def test_faults_spare_discovery_and_the_token_endpoint(sandbox: SandboxServer, client_key: SigningKey) -> None:
    set_faults(sandbox, fail_next=1, status=500)
    assert httpx.get(f"{sandbox.fhir_base}/.well-known/smart-configuration").status_code == 200
    assert httpx.get(f"{sandbox.fhir_base}/metadata").status_code == 200
    client_id = new_client(sandbox, client_key)
    assertion = client_assertion(client_key, client_id=client_id, audience=sandbox.token_url)
    assert token_request(sandbox, assertion).status_code == 200
    assert httpx.get(f"{sandbox.base_url}/_sandbox/faults").json()["fail_next"] == 1


@pytest.mark.parametrize(("kind", "media"), [("truncated", "application/fhir+json"),
                                             ("not-fhir", "application/fhir+json"), ("html", "text/html")])
def test_garbage_next_answers_200_with_an_unusable_body(kind: str, media: str, sandbox: SandboxServer,
                                                        token: str) -> None:
    set_faults(sandbox, garbage_next=1, garbage=kind)
    garbage = submit(sandbox, token, request_bundle())
    assert garbage.status_code == 200 and garbage.headers["content-type"].startswith(media)
    try:
        parsed = json.loads(garbage.content)
    except ValueError:
        parsed = None
    assert not (isinstance(parsed, dict) and parsed.get("resourceType") == "Bundle")
    assert submit(sandbox, token, request_bundle()).json()["resourceType"] == "Bundle"  # used up


def test_latency_delays_fhir_calls_until_reset(sandbox: SandboxServer, token: str) -> None:
    set_faults(sandbox, latency_ms=250)
    started = time.monotonic()
    assert submit(sandbox, token, request_bundle()).status_code == 200
    assert time.monotonic() - started >= 0.25
    set_faults(sandbox, reset=True)
    assert httpx.get(f"{sandbox.base_url}/_sandbox/faults").json()["latency_ms"] == 0


@pytest.mark.parametrize("command", [
    {"fail_next": -1}, {"status": 200, "fail_next": 1}, {"garbage": "binary"}, {"latency": 5}, {"reset": "yes"},
])
def test_bad_fault_commands_are_refused_and_change_nothing(command: dict[str, object],
                                                           sandbox: SandboxServer) -> None:
    response = httpx.post(f"{sandbox.base_url}/_sandbox/faults", json=command)
    assert response.status_code == 400 and response.json()["error"]
    knobs = httpx.get(f"{sandbox.base_url}/_sandbox/faults").json()
    assert knobs["fail_next"] == 0 and knobs["garbage_next"] == 0


def test_clients_can_be_registered_over_http(sandbox: SandboxServer) -> None:
    key = generate_key("RS384")
    body = {"client_id": "http-registered", "jwks": public_jwks(key), "scopes": ["system/Claim.c"]}
    created = httpx.post(f"{sandbox.base_url}/_sandbox/clients", json=body)
    assert created.status_code == 201 and created.json()["client_id"] == "http-registered"
    assertion = client_assertion(key, client_id="http-registered", audience=sandbox.token_url)
    assert token_request(sandbox, assertion, scope="system/Claim.c").status_code == 200


@pytest.mark.parametrize(("body", "needle"), [
    ({"client_id": "x", "jwks": {"keys": []}, "scopes": ["system/Claim.c"]}, "jwks"),
    ({"client_id": "x", "jwks": {"keys": [{"kty": "EC", "kid": "k", "crv": "P-384", "x": "AA", "y": "AA",
                                           "d": "AA"}]}, "scopes": ["system/Claim.c"]}, "private"),
    ({"client_id": "", "jwks": {}, "scopes": []}, "client_id"),
])
def test_bad_client_registrations_are_refused(body: dict[str, object], needle: str,
                                              sandbox: SandboxServer) -> None:
    response = httpx.post(f"{sandbox.base_url}/_sandbox/clients", json=body)
    assert response.status_code == 400
    assert needle in response.json()["error"]


def test_bad_scope_in_registration_is_refused(sandbox: SandboxServer, client_key: SigningKey) -> None:
    body = {"client_id": "bad-scope", "jwks": public_jwks(client_key), "scopes": ["Claim.create"]}
    response = httpx.post(f"{sandbox.base_url}/_sandbox/clients", json=body)
    assert response.status_code == 400 and "scopes[0]" in response.json()["error"]

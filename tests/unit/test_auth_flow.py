"""SmartBackendAuth and the key/assertion pieces, with respx standing in for the payer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from fhir_pa.auth.assertion import client_assertion
from fhir_pa.auth.keys import generate_key, load_signing_key, public_jwks, write_key_pair
from fhir_pa.auth.smart import SmartBackendAuth
from fhir_pa.auth.verify import AssertionRejected, JtiCache, verify_client_assertion
from fhir_pa.errors import DiscoveryError, KeyFileError, TokenError

BASE = "https://payer.test/fhir"
TOKEN = "https://payer.test/auth/token"
KEY = generate_key("ES384")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _token_route(lifetime: int = 300) -> respx.Route:
    counter = iter(range(1000))

    def issue(request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        claims = verify_client_assertion(form["client_assertion"][0], jwks=public_jwks(KEY), audience=TOKEN,
                                         now=Clock().now)
        assert form["grant_type"] == ["client_credentials"] and claims["iss"] == "c"
        return httpx.Response(200, json={"access_token": f"tok-{next(counter)}", "token_type": "bearer",
                                         "expires_in": lifetime, "scope": form["scope"][0]})

    respx.get(f"{BASE}/.well-known/smart-configuration").mock(return_value=httpx.Response(
        200, json={"token_endpoint": TOKEN}))
    return respx.post(TOKEN).mock(side_effect=issue)


def _auth(clock: Clock | None = None, **kw: object) -> SmartBackendAuth:
    return SmartBackendAuth(fhir_base_url=BASE, client_id="c", key=KEY, scopes=["system/Claim.c"],
                            clock=clock or Clock(), **kw)  # type: ignore[arg-type]


@respx.mock
def test_discovery_token_and_reuse() -> None:
    tokens = _token_route()
    resource = respx.get(f"{BASE}/Claim").mock(return_value=httpx.Response(200))
    auth = _auth()
    with httpx.Client(auth=auth) as client:
        client.get(f"{BASE}/Claim")
        client.get(f"{BASE}/Claim")
    assert tokens.call_count == 1 and auth.token_requests == 1
    assert resource.calls[1].request.headers["authorization"] == "Bearer tok-0"


@respx.mock
def test_renewed_before_expiry() -> None:
    tokens = _token_route(lifetime=60)
    respx.get(f"{BASE}/Claim").mock(return_value=httpx.Response(200))
    clock = Clock()
    with httpx.Client(auth=_auth(clock)) as client:
        client.get(f"{BASE}/Claim")
        clock.now += 35  # inside the 30 s leeway of a 60 s token
        client.get(f"{BASE}/Claim")
    assert tokens.call_count == 2


@respx.mock
def test_one_reauth_on_401_never_a_loop() -> None:
    tokens = _token_route()
    resource = respx.get(f"{BASE}/Claim").mock(side_effect=[httpx.Response(401), httpx.Response(200)])
    with httpx.Client(auth=_auth()) as client:
        assert client.get(f"{BASE}/Claim").status_code == 200
    assert tokens.call_count == 2 and resource.call_count == 2
    resource.mock(return_value=httpx.Response(401))
    with httpx.Client(auth=_auth()) as client:
        assert client.get(f"{BASE}/Claim").status_code == 401
    assert resource.call_count == 4


@respx.mock
async def test_concurrent_async_requests_share_one_token() -> None:
    tokens = _token_route()
    respx.get(f"{BASE}/Claim").mock(return_value=httpx.Response(200))
    async with httpx.AsyncClient(auth=_auth()) as client:
        await asyncio.gather(*(client.get(f"{BASE}/Claim") for _ in range(20)))
    assert tokens.call_count == 1


@respx.mock
def test_token_error_carries_oauth_error_but_no_secret() -> None:
    respx.get(f"{BASE}/.well-known/smart-configuration").mock(return_value=httpx.Response(
        200, json={"token_endpoint": TOKEN}))
    respx.post(TOKEN).mock(return_value=httpx.Response(401, json={"error": "invalid_client",
                                                                  "error_description": "bad kid"}))
    with httpx.Client(auth=_auth()) as client, pytest.raises(TokenError) as err:
        client.get(f"{BASE}/Claim")
    assert err.value.error == "invalid_client" and err.value.status == 401
    assert "eyJ" not in str(err.value)  # no JWT in the message


@respx.mock
def test_discovery_failure_and_configured_endpoint() -> None:
    respx.get(f"{BASE}/.well-known/smart-configuration").mock(return_value=httpx.Response(404))
    with httpx.Client(auth=_auth()) as client, pytest.raises(DiscoveryError):
        client.get(f"{BASE}/Claim")
    tokens = _token_route()
    respx.get(f"{BASE}/.well-known/smart-configuration").mock(return_value=httpx.Response(404))
    respx.get(f"{BASE}/Claim").mock(return_value=httpx.Response(200))
    with httpx.Client(auth=_auth(token_endpoint=TOKEN)) as client:
        assert client.get(f"{BASE}/Claim").status_code == 200
    assert tokens.call_count == 1


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_key_files_round_trip_and_stay_private(alg: str, tmp_path: Path) -> None:
    key = generate_key(alg)  # type: ignore[arg-type]
    private_path, public_path = write_key_pair(key, tmp_path)
    assert private_path.stat().st_mode & 0o777 == 0o600
    assert "d" not in json.loads(public_path.read_text())["keys"][0]
    loaded = load_signing_key(private_path)
    assert (loaded.kid, loaded.alg) == (key.kid, key.alg)
    token = client_assertion(loaded, client_id="c", audience=TOKEN)
    assert verify_client_assertion(token, jwks=json.loads(public_path.read_text()), audience=TOKEN)["sub"] == "c"


def test_bad_key_file_names_file_without_material(tmp_path: Path) -> None:
    bad = tmp_path / "key.json"
    bad.write_text(json.dumps({"kty": "EC", "crv": "P-384", "x": "secretish", "d": "zzz"}))
    with pytest.raises(KeyFileError) as err:
        load_signing_key(bad)
    assert str(bad) in str(err.value) and "zzz" not in str(err.value)
    with pytest.raises(KeyFileError, match="cannot read"):
        load_signing_key(tmp_path / "missing.pem")


def test_verifier_refusals() -> None:
    jwks = public_jwks(KEY)
    now = 1_800_000_000.0
    good = client_assertion(KEY, client_id="c", audience=TOKEN, now=now)
    cache = JtiCache()
    verify_client_assertion(good, jwks=jwks, audience=TOKEN, jti_cache=cache, now=now)
    cases: dict[str, Callable[[], Any]] = {
        "replay": lambda: verify_client_assertion(good, jwks=jwks, audience=TOKEN, jti_cache=cache, now=now),
        "expired": lambda: verify_client_assertion(good, jwks=jwks, audience=TOKEN, now=now + 1000),
        "audience": lambda: verify_client_assertion(good, jwks=jwks, audience="https://other/token", now=now),
        "wrong key": lambda: verify_client_assertion(
            client_assertion(generate_key("ES384", kid=KEY.kid), client_id="c", audience=TOKEN, now=now),
            jwks=jwks, audience=TOKEN, now=now),
        "alg": lambda: verify_client_assertion(good, jwks=jwks, audience=TOKEN, algorithms=("RS384",), now=now),
    }
    for name, call in cases.items():
        with pytest.raises(AssertionRejected) as err:
            call()
        assert err.value.error == "invalid_client", name

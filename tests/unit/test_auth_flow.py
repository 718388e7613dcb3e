"""SmartBackendAuth against a respx payer that really verifies assertions and checks bearer tokens.

Every behaviour is run with both ``httpx.Client`` and ``httpx.AsyncClient``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from fhir_pa.auth.keys import SigningKey, generate_key, public_jwks
from fhir_pa.auth.smart import ASSERTION_TYPE, SmartBackendAuth
from fhir_pa.auth.verify import AssertionRejected, JtiCache, verify_client_assertion
from fhir_pa.errors import DiscoveryError, TokenError

BASE = "https://payer.test/fhir"
DISCOVERY = f"{BASE}/.well-known/smart-configuration"
TOKEN_URL = "https://payer.test/auth/token"
CLAIMS = f"{BASE}/Claim"
CLIENT = "ehr-1"
SCOPES = ["system/Claim.c", "system/ClaimResponse.rs"]
KEY = generate_key("ES384")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Payer:
    """Discovery, a token endpoint that verifies each assertion for real, and a FHIR endpoint checking tokens."""

    def __init__(self, clock: Clock, *, lifetime: int = 300, key: SigningKey = KEY) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.jwks = public_jwks(key)
        self.jti_cache = JtiCache()
        self.valid: dict[str, float] = {}
        self.assertions: list[str] = []
        self.seen_authorization: list[str] = []  # as sent: httpx re-sends (and mutates) the same request
        self.router = respx.MockRouter(assert_all_called=False)
        self.discovery = self.router.get(DISCOVERY).mock(
            return_value=httpx.Response(200, json={"token_endpoint": TOKEN_URL, "capabilities": []}))
        self.token = self.router.post(TOKEN_URL).mock(side_effect=self.issue)
        self.fhir = self.router.route(url__startswith=CLAIMS).mock(side_effect=self.resource)

    def issue(self, request: httpx.Request) -> httpx.Response:
        form = {name: values[0] for name, values in parse_qs(request.content.decode()).items()}
        assertion = form.get("client_assertion", "")
        self.assertions.append(assertion)
        try:
            verify_client_assertion(assertion, jwks=self.jwks, audience=TOKEN_URL, issuer=CLIENT,
                                    jti_cache=self.jti_cache, now=self.clock())
        except AssertionRejected as exc:
            return httpx.Response(401, json={"error": exc.error, "error_description": exc.description})
        assert form["grant_type"] == "client_credentials" and form["client_assertion_type"] == ASSERTION_TYPE
        value = f"tok-{len(self.valid)}"
        self.valid[value] = self.clock() + self.lifetime
        return httpx.Response(200, json={"access_token": value, "token_type": "Bearer",
                                         "expires_in": self.lifetime, "scope": form["scope"]})

    def resource(self, request: httpx.Request) -> httpx.Response:
        self.seen_authorization.append(request.headers.get("authorization", ""))
        scheme, _, value = self.seen_authorization[-1].partition(" ")
        if scheme != "Bearer" or self.valid.get(value, 0) <= self.clock():
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return httpx.Response(200, json={"resourceType": "Bundle", "echo": request.content.decode()})

    def revoke_all(self) -> None:
        self.valid = dict.fromkeys(self.valid, 0.0)

    def bearer_tokens(self) -> list[str]:
        return list(self.seen_authorization)


class Session:
    """One interface over a sync or an async httpx client, both going through the payer's router."""

    def __init__(self, flavour: str, auth: SmartBackendAuth, payer: Payer) -> None:
        self.flavour = flavour
        self.sync = httpx.Client(auth=auth, transport=httpx.MockTransport(payer.router.handler), timeout=7.0)
        self.async_ = httpx.AsyncClient(auth=auth, transport=httpx.MockTransport(payer.router.async_handler),
                                        timeout=7.0)

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self.flavour == "sync":
            return self.sync.request(method, url, **kwargs)
        return await self.async_.request(method, url, **kwargs)

    async def get(self, url: str = CLAIMS) -> httpx.Response:
        return await self.request("GET", url)


@asynccontextmanager
async def session(flavour: str, auth: SmartBackendAuth, payer: Payer) -> AsyncIterator[Session]:
    opened = Session(flavour, auth, payer)
    try:
        yield opened
    finally:
        opened.sync.close()
        await opened.async_.aclose()


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def payer(clock: Clock) -> Payer:
    return Payer(clock)


def make_auth(clock: Clock, **options: Any) -> SmartBackendAuth:
    return SmartBackendAuth(fhir_base_url=BASE, client_id=CLIENT, key=KEY, scopes=SCOPES, clock=clock, **options)


# --- the normal path ----------------------------------------------------------------------------------


async def test_discovery_token_then_resource(flavour: str, clock: Clock, payer: Payer) -> None:
    auth = make_auth(clock)
    async with session(flavour, auth, payer) as s:
        response = await s.get()
    assert response.status_code == 200
    discovery = payer.discovery.calls.last.request
    assert discovery.headers["accept"] == "application/json"
    token_request = payer.token.calls.last.request
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(token_request.content.decode())
    assert form["scope"] == [" ".join(SCOPES)] and "client_id" not in form
    assert payer.bearer_tokens() == ["Bearer tok-0"]
    assert auth.token_endpoint == TOKEN_URL and auth.configuration is not None
    assert auth.token_requests == 1


async def test_token_and_discovery_are_reused(flavour: str, clock: Clock, payer: Payer) -> None:
    auth = make_auth(clock)
    async with session(flavour, auth, payer) as s:
        for _ in range(3):
            assert (await s.get()).status_code == 200
            clock.now += 60
    assert (payer.discovery.call_count, payer.token.call_count, auth.token_requests) == (1, 1, 1)
    assert payer.bearer_tokens() == ["Bearer tok-0"] * 3


async def test_renewed_leeway_seconds_before_expiry(flavour: str, clock: Clock, payer: Payer) -> None:
    auth = make_auth(clock, leeway=30)
    async with session(flavour, auth, payer) as s:
        await s.get()
        clock.now += 269  # 31 s of life left: still used
        await s.get()
        clock.now += 2  # 29 s left: inside the leeway, so renewed before sending
        await s.get()
    assert payer.bearer_tokens() == ["Bearer tok-0", "Bearer tok-0", "Bearer tok-1"]
    assert payer.token.call_count == 2 and payer.discovery.call_count == 1
    assert payer.fhir.call_count == 3  # no request was wasted on a stale token
    first, second = (parse_qs(call.request.content.decode())["client_assertion"][0] for call in payer.token.calls)
    assert first != second  # a fresh assertion (and jti) each time


async def test_configured_token_endpoint_skips_discovery(flavour: str, clock: Clock, payer: Payer) -> None:
    auth = make_auth(clock, token_endpoint=TOKEN_URL)
    async with session(flavour, auth, payer) as s:
        assert (await s.get()).status_code == 200
    assert payer.discovery.call_count == 0 and payer.token.call_count == 1
    assert auth.configuration is None


async def test_our_requests_keep_the_callers_timeout(flavour: str, clock: Clock, payer: Payer) -> None:
    async with session(flavour, make_auth(clock), payer) as s:
        await s.get()
    for route in (payer.discovery, payer.token):
        assert route.calls.last.request.extensions["timeout"]["read"] == 7.0


# --- 401 from the resource server -------------------------------------------------------------------------


async def test_one_reauth_on_401_then_success(flavour: str, clock: Clock, payer: Payer) -> None:
    auth = make_auth(clock)
    async with session(flavour, auth, payer) as s:
        await s.get()
        payer.revoke_all()  # the payer forgets the token before it expires
        response = await s.request("POST", CLAIMS, json={"resourceType": "Bundle", "id": "b1"})
    assert response.status_code == 200
    assert '"id":"b1"' in response.json()["echo"]  # the body was sent again intact
    assert payer.bearer_tokens() == ["Bearer tok-0", "Bearer tok-0", "Bearer tok-1"]
    assert auth.token_requests == 2 and payer.discovery.call_count == 1


async def test_second_401_is_returned_not_looped(flavour: str, clock: Clock, payer: Payer) -> None:
    auth = make_auth(clock)
    payer.fhir.mock(side_effect=None, return_value=httpx.Response(401))
    async with session(flavour, auth, payer) as s:
        response = await s.get()
    assert response.status_code == 401
    assert payer.fhir.call_count == 2 and payer.token.call_count == 2


async def test_403_is_not_retried(flavour: str, clock: Clock, payer: Payer) -> None:
    payer.fhir.mock(side_effect=None, return_value=httpx.Response(403))
    async with session(flavour, make_auth(clock), payer) as s:
        assert (await s.get()).status_code == 403
    assert payer.fhir.call_count == 1 and payer.token.call_count == 1


class WireTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Consumes request bodies the way a network transport does (once, unbuffered), then asks the payer."""

    def __init__(self, payer: Payer) -> None:
        self.payer = payer

    def _copy(self, request: httpx.Request, body: bytes) -> httpx.Request:
        return httpx.Request(request.method, request.url, headers=request.headers, content=body)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        return self.payer.router.handler(self._copy(request, b"".join(request.stream)))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        body = b"".join([chunk async for chunk in request.stream])
        return await self.payer.router.async_handler(self._copy(request, body))


PARTS = [b'{"resourceType":', b'"Bundle"}']


def test_a_streamed_body_is_sent_again_after_401_sync(clock: Clock, payer: Payer) -> None:
    with httpx.Client(auth=make_auth(clock), transport=WireTransport(payer)) as client:
        client.get(CLAIMS)
        payer.revoke_all()
        response = client.post(CLAIMS, content=iter(PARTS))
    assert response.status_code == 200 and response.json()["echo"] == b"".join(PARTS).decode()
    assert payer.bearer_tokens() == ["Bearer tok-0", "Bearer tok-0", "Bearer tok-1"]


async def test_a_streamed_body_is_sent_again_after_401_async(clock: Clock, payer: Payer) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in PARTS:
            yield part

    async with httpx.AsyncClient(auth=make_auth(clock), transport=WireTransport(payer)) as client:
        await client.get(CLAIMS)
        payer.revoke_all()
        response = await client.post(CLAIMS, content=chunks())
    assert response.status_code == 200 and response.json()["echo"] == b"".join(PARTS).decode()
    assert payer.bearer_tokens() == ["Bearer tok-0", "Bearer tok-0", "Bearer tok-1"]


# --- concurrency -------------------------------------------------------------------------------------------


async def test_concurrent_async_requests_share_one_token_request(clock: Clock, payer: Payer) -> None:
    async def slow_issue(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.02)  # the other requests arrive while this one is in flight
        return payer.issue(request)

    payer.token.mock(side_effect=slow_issue)
    auth = make_auth(clock)
    async with session("async", auth, payer) as s:
        responses = await asyncio.gather(*(s.get() for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert payer.token.call_count == 1 and payer.discovery.call_count == 1 and auth.token_requests == 1


async def test_concurrent_401s_renew_once(clock: Clock, payer: Payer) -> None:
    auth = make_auth(clock)
    async with session("async", auth, payer) as s:
        await s.get()
        payer.revoke_all()
        responses = await asyncio.gather(*(s.get() for _ in range(10)))
    assert [r.status_code for r in responses] == [200] * 10
    assert payer.token.call_count == 2


def test_concurrent_threads_share_one_token_request(clock: Clock, payer: Payer) -> None:
    def slow_issue(request: httpx.Request) -> httpx.Response:
        time.sleep(0.02)
        return payer.issue(request)

    payer.token.mock(side_effect=slow_issue)
    auth = make_auth(clock)
    start = threading.Barrier(8)
    with httpx.Client(auth=auth, transport=httpx.MockTransport(payer.router.handler)) as client:
        def call(_: int) -> int:
            start.wait()
            return client.get(CLAIMS).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(call, range(8))) == [200] * 8
    assert payer.token.call_count == 1


def test_one_auth_serves_successive_event_loops(clock: Clock, payer: Payer) -> None:
    auth = make_auth(clock)

    async def burst() -> list[int]:
        async with session("async", auth, payer) as s:
            return [r.status_code for r in await asyncio.gather(*(s.get() for _ in range(5)))]

    assert asyncio.run(burst()) == [200] * 5
    clock.now += 400  # expired: the second loop must renew under its own lock
    assert asyncio.run(burst()) == [200] * 5
    assert payer.token.call_count == 2


# --- failures -------------------------------------------------------------------------------------------------


async def test_refused_token_request_is_a_token_error_without_secrets(flavour: str, clock: Clock,
                                                                      payer: Payer) -> None:
    wrong_key = generate_key("ES384", kid=KEY.kid)  # registered kid, different key: signature fails
    auth = SmartBackendAuth(fhir_base_url=BASE, client_id=CLIENT, key=wrong_key, scopes=SCOPES, clock=clock)
    async with session(flavour, auth, payer) as s:
        with pytest.raises(TokenError) as err:
            await s.get()
    assert (err.value.status, err.value.error) == (401, "invalid_client")
    assert err.value.description is not None and "signature" in err.value.description
    assert payer.fhir.call_count == 0
    (assertion,) = payer.assertions
    assert assertion not in str(err.value) and assertion.split(".")[2] not in str(err.value)


async def test_an_earlier_token_never_shows_in_later_errors(flavour: str, clock: Clock, payer: Payer) -> None:
    async with session(flavour, make_auth(clock), payer) as s:
        await s.get()
        payer.revoke_all()
        payer.token.mock(side_effect=None, return_value=httpx.Response(
            400, json={"error": "invalid_scope", "error_description": "tok-0 is not allowed Claim.c"}))
        with pytest.raises(TokenError) as err:
            await s.get()
    assert err.value.error == "invalid_scope"
    assert "Bearer" not in str(err.value) and "eyJ" not in str(err.value)


@pytest.mark.parametrize(("answer", "words"), [
    (httpx.Response(404), "answered HTTP 404"),
    (httpx.Response(200, text="<html/>"), "did not answer JSON"),
    (httpx.Response(200, json={"issuer": "x"}), "no usable token_endpoint"),
])
async def test_discovery_failures(flavour: str, clock: Clock, payer: Payer, answer: httpx.Response,
                                  words: str) -> None:
    payer.discovery.mock(return_value=answer)
    async with session(flavour, make_auth(clock), payer) as s:
        with pytest.raises(DiscoveryError, match=words) as err:
            await s.get()
    assert DISCOVERY in str(err.value)
    assert payer.token.call_count == 0 and payer.fhir.call_count == 0


async def test_failed_discovery_is_tried_again_next_time(flavour: str, clock: Clock, payer: Payer) -> None:
    payer.discovery.mock(side_effect=[httpx.Response(503), httpx.Response(200, json={"token_endpoint": TOKEN_URL})])
    async with session(flavour, make_auth(clock), payer) as s:
        with pytest.raises(DiscoveryError):
            await s.get()
        assert (await s.get()).status_code == 200


async def test_connection_errors_propagate_as_httpx_errors(flavour: str, clock: Clock, payer: Payer) -> None:
    payer.token.mock(side_effect=httpx.ConnectError("refused"))
    async with session(flavour, make_auth(clock), payer) as s:
        with pytest.raises(httpx.ConnectError):
            await s.get()
        payer.token.mock(side_effect=payer.issue)
        assert (await s.get()).status_code == 200  # the lock was released


def test_repr_names_the_client_only(clock: Clock) -> None:
    auth: Callable[..., SmartBackendAuth] = make_auth
    assert repr(auth(clock)) == f"SmartBackendAuth(client_id={CLIENT!r}, fhir_base_url={BASE!r})"

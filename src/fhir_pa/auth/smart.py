"""SMART Backend Services as an ``httpx.Auth``: any httpx client, sync or async, gets payer tokens.

The discovery and token requests are yielded through the caller's own client, so its transport, timeouts
and test mocks see them. One token is shared by concurrent requests (one lock per flavour), renewed
``leeway`` seconds before it expires, and fetched again once if the resource server answers 401.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Sequence

import httpx

from fhir_pa.auth.assertion import client_assertion
from fhir_pa.auth.discovery import parse_smart_configuration, smart_configuration_url
from fhir_pa.auth.keys import SigningKey
from fhir_pa.auth.token import AccessToken, parse_token_response
from fhir_pa.errors import DiscoveryError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TokenFetch = Generator[httpx.Request, httpx.Response, AccessToken]


class SmartBackendAuth(httpx.Auth):
    requires_response_body = True

    def __init__(self, *, fhir_base_url: str, client_id: str, key: SigningKey, scopes: Sequence[str],
                 token_endpoint: str | None = None, leeway: float = 30.0, clock: Callable[[], float] = time.time,
                 jku: str | None = None) -> None:
        self.fhir_base_url = fhir_base_url.rstrip("/")
        self.client_id = client_id
        self.key = key
        self.scopes = tuple(scopes)
        self.token_endpoint = token_endpoint
        self.leeway = leeway
        self.clock = clock
        self.jku = jku
        self.token_requests = 0
        self._token: AccessToken | None = None
        self._sync_lock = threading.Lock()
        self._async_locks: dict[int, asyncio.Lock] = {}

    # -- the protocol, as a generator of requests ----------------------------------------------------

    def _fetch(self) -> TokenFetch:
        if self.token_endpoint is None:
            url = smart_configuration_url(self.fhir_base_url)
            response = yield httpx.Request("GET", url, headers={"Accept": "application/json"})
            if response.status_code != 200:
                raise DiscoveryError(f"SMART discovery at {url} answered HTTP {response.status_code}")
            try:
                doc = response.json()
            except ValueError:
                raise DiscoveryError(f"SMART discovery at {url} is not JSON") from None
            self.token_endpoint = parse_smart_configuration(doc, source=url).token_endpoint
        endpoint = self.token_endpoint
        assertion = client_assertion(self.key, client_id=self.client_id, audience=endpoint, now=self.clock(),
                                     jku=self.jku)
        self.token_requests += 1
        response = yield httpx.Request("POST", endpoint, headers={"Accept": "application/json"}, data={
            "grant_type": "client_credentials", "scope": " ".join(self.scopes),
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion})
        return parse_token_response(response.status_code, response.content, requested_scopes=self.scopes,
                                    now=self.clock())

    def _fresh(self) -> AccessToken | None:
        token = self._token
        return token if token is not None and token.is_fresh(self.clock(), self.leeway) else None

    @staticmethod
    def _authorize(request: httpx.Request, token: AccessToken) -> None:
        request.headers["Authorization"] = f"Bearer {token.value}"

    # -- sync ---------------------------------------------------------------------------------------

    def _sync_token(self, stale: AccessToken | None = None) -> Generator[httpx.Request, httpx.Response, AccessToken]:
        with self._sync_lock:
            token = self._fresh()
            if token is None or token is stale:
                fetch = self._fetch()
                outgoing = next(fetch)
                while True:
                    response = yield outgoing
                    response.read()
                    try:
                        outgoing = fetch.send(response)
                    except StopIteration as done:
                        token = done.value
                        break
                self._token = token
            return token

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = yield from self._sync_token()
        self._authorize(request, token)
        response = yield request
        if response.status_code == 401:
            token = yield from self._sync_token(stale=token)
            self._authorize(request, token)
            yield request

    # -- async --------------------------------------------------------------------------------------

    def _async_lock(self) -> asyncio.Lock:
        loop = id(asyncio.get_running_loop())
        lock = self._async_locks.get(loop)
        if lock is None:
            lock = self._async_locks[loop] = asyncio.Lock()
        return lock

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token: AccessToken | None = None
        for attempt in range(2):
            async with self._async_lock():
                token_now = self._fresh()
                if token_now is None or (attempt == 1 and token_now is token):
                    fetch = self._fetch()
                    outgoing = next(fetch)
                    while True:
                        response = yield outgoing
                        await response.aread()
                        try:
                            outgoing = fetch.send(response)
                        except StopIteration as done:
                            token_now = done.value
                            break
                    self._token = token_now
            token = token_now
            self._authorize(request, token)
            response = yield request
            if response.status_code != 401:
                return

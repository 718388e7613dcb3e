"""SMART Backend Services as an ``httpx.Auth``: any httpx client, sync or async, gets payer tokens.

The discovery and token requests are yielded through the caller's own client, so its transport, timeouts
and test mocks see them. One token is shared by concurrent requests (one lock per flavour, so N requests
cause one token request), renewed ``leeway`` seconds before it expires, and fetched again once if the
resource server answers 401. The token and the signed assertion never appear in errors or logs.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from typing import Any

import httpx

from fhir_pa.auth.assertion import client_assertion
from fhir_pa.auth.discovery import SmartConfiguration, parse_smart_configuration, smart_configuration_url
from fhir_pa.auth.keys import SigningKey
from fhir_pa.auth.token import AccessToken, parse_token_response
from fhir_pa.errors import DiscoveryError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The protocol as a generator: yields requests to send, is sent their responses, returns the token.
TokenSteps = Generator[httpx.Request, httpx.Response, AccessToken]


class SmartBackendAuth(httpx.Auth):
    """``client_credentials`` with a ``private_key_jwt`` assertion (SMART App Launch 2, Backend Services)."""

    def __init__(self, *, fhir_base_url: str, client_id: str, key: SigningKey, scopes: Sequence[str],
                 token_endpoint: str | None = None, leeway: float = 30.0, clock: Callable[[], float] = time.time,
                 jku: str | None = None) -> None:
        self.fhir_base_url = fhir_base_url.rstrip("/")
        self.client_id = client_id
        self.key = key
        self.scopes = tuple(scopes)
        self.leeway = leeway
        self.clock = clock
        self.jku = jku
        #: Token requests sent so far (for tests and benchmarks).
        self.token_requests = 0
        #: The discovery document, once read (None when ``token_endpoint`` was configured).
        self.configuration: SmartConfiguration | None = None
        self._token_endpoint = token_endpoint
        self._token: AccessToken | None = None
        self._sync_lock = threading.Lock()
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = \
            weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"SmartBackendAuth(client_id={self.client_id!r}, fhir_base_url={self.fhir_base_url!r})"

    @property
    def token_endpoint(self) -> str | None:
        """The configured or discovered token URL (None until discovery has run)."""
        return self._token_endpoint

    # -- the protocol, shared by both flavours --------------------------------------------------------

    def _renew(self, stale: AccessToken | None, extensions: dict[str, Any]) -> TokenSteps:
        """The cached token if it is fresh and not ``stale``; otherwise discover (once) and ask for a new one."""
        cached = self._token
        if cached is not None and cached is not stale and cached.is_fresh(self.clock(), self.leeway):
            return cached
        self._token = None
        endpoint = self._token_endpoint
        if endpoint is None:
            endpoint = yield from self._discover(extensions)
        assertion = client_assertion(self.key, client_id=self.client_id, audience=endpoint, now=self.clock(),
                                     jku=self.jku)
        self.token_requests += 1
        response = yield httpx.Request("POST", endpoint, headers={"Accept": "application/json"}, data={
            "grant_type": "client_credentials", "scope": " ".join(self.scopes),
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}, extensions=extensions)
        token = parse_token_response(response.status_code, response.content, requested_scopes=self.scopes,
                                     now=self.clock())
        self._token = token
        return token

    def _discover(self, extensions: dict[str, Any]) -> Generator[httpx.Request, httpx.Response, str]:
        url = smart_configuration_url(self.fhir_base_url)
        response = yield httpx.Request("GET", url, headers={"Accept": "application/json"}, extensions=extensions)
        if response.status_code != 200:
            raise DiscoveryError(f"SMART discovery at {url} answered HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError:
            raise DiscoveryError(f"SMART discovery at {url} did not answer JSON") from None
        self.configuration = parse_smart_configuration(document, source=url)
        self._token_endpoint = self.configuration.token_endpoint
        return self._token_endpoint

    @staticmethod
    def _extensions(request: httpx.Request) -> dict[str, Any]:
        """Our own requests keep the caller's timeouts (httpx only sets them on the first request)."""
        timeout = request.extensions.get("timeout")
        return {"timeout": timeout} if timeout is not None else {}

    @staticmethod
    def _authorized(request: httpx.Request, token: AccessToken) -> httpx.Request:
        request.headers["Authorization"] = f"Bearer {token.value}"
        return request

    # -- sync -----------------------------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()  # buffered, so the request can be sent again after a 401
        extensions = self._extensions(request)
        stale: AccessToken | None = None
        for _ in range(2):
            with self._sync_lock:
                steps = self._renew(stale, extensions)
                try:
                    outgoing = next(steps)
                    while True:
                        reply = yield outgoing
                        reply.read()
                        outgoing = steps.send(reply)
                except StopIteration as done:
                    token: AccessToken = done.value
            response = yield self._authorized(request, token)
            if response.status_code != 401:
                return
            stale = token

    # -- async ----------------------------------------------------------------------------------------

    def _async_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._async_locks.get(loop)
        if lock is None:
            lock = self._async_locks[loop] = asyncio.Lock()
        return lock

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()  # buffered, so the request can be sent again after a 401
        extensions = self._extensions(request)
        stale: AccessToken | None = None
        for _ in range(2):
            async with self._async_lock():
                steps = self._renew(stale, extensions)
                try:
                    outgoing = next(steps)
                    while True:
                        reply = yield outgoing
                        await reply.aread()
                        outgoing = steps.send(reply)
                except StopIteration as done:
                    token: AccessToken = done.value
            response = yield self._authorized(request, token)
            if response.status_code != 401:
                return
            stale = token

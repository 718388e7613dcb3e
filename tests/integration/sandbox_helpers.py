"""Helpers for the sandbox's own integration tests: register a client, mint assertions, get tokens."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from fhir_pa.auth.assertion import client_assertion
from fhir_pa.auth.keys import SigningKey, public_jwks
from fhir_pa_sandbox.server import SandboxServer

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PAS_SCOPE = "system/Claim.c system/ClaimResponse.r"
FHIR_JSON = "application/fhir+json"

_ids = itertools.count()


def new_client(sandbox: SandboxServer, key: SigningKey,
               scopes: Sequence[str] = ("system/Claim.c", "system/ClaimResponse.r")) -> str:
    """Register a fresh client id for ``key`` and return it."""
    client_id = f"sandbox-test-{next(_ids)}"
    sandbox.register_client(client_id, public_jwks(key), list(scopes))
    return client_id


def token_request(sandbox: SandboxServer, assertion: str, *, scope: str = PAS_SCOPE,
                  grant_type: str = "client_credentials", assertion_type: str = JWT_BEARER) -> httpx.Response:
    form = {"grant_type": grant_type, "scope": scope, "client_assertion_type": assertion_type,
            "client_assertion": assertion}
    return httpx.post(sandbox.token_url, data=form)


def get_token(sandbox: SandboxServer, key: SigningKey, client_id: str, scope: str = PAS_SCOPE) -> str:
    response = token_request(sandbox, client_assertion(key, client_id=client_id, audience=sandbox.token_url),
                             scope=scope)
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def submit(sandbox: SandboxServer, token: str | None, bundle: Any, *,
           content_type: str = FHIR_JSON) -> httpx.Response:
    """POST ``bundle`` (a dict, or raw bytes) to ``Claim/$submit``."""
    headers = {"Content-Type": content_type, "Accept": FHIR_JSON}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    content = bundle if isinstance(bundle, bytes) else json.dumps(bundle).encode("utf-8")
    return httpx.post(f"{sandbox.fhir_base}/Claim/$submit", content=content, headers=headers)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)

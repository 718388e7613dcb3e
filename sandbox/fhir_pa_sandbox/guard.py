"""Bearer-token checks in front of every FHIR API call.

No token, an unknown token or an expired one → 401 with ``WWW-Authenticate: Bearer error="invalid_token"``;
a live token without the scope the call needs → 403 (``insufficient_scope``). Both bodies are
OperationOutcomes, as PAS wants for every 4xx. :func:`gate` runs first on every FHIR API call: the test
knobs' latency and injected faults, then these checks.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from fhir_pa_sandbox.knobs import fault_response
from fhir_pa_sandbox.outcome import refuse
from fhir_pa_sandbox.scopes import permits
from fhir_pa_sandbox.state import state_of
from fhir_pa_sandbox.tokens import AccessToken, TokenRejected

REALM = "fhir-pa-sandbox"


def _challenge(error: str, description: str, scope: str | None = None) -> str:
    parts = [f'realm="{REALM}"', f'error="{error}"', f'error_description="{description}"']
    if scope:
        parts.append(f'scope="{scope}"')
    return "Bearer " + ", ".join(parts)


def authorize(request: Request, resource: str, permission: str,
              *alternatives: tuple[str, str]) -> AccessToken | Response:
    """The caller's token if it may do ``permission`` (one of cruds) on ``resource``, or any of the
    ``(resource, permission)`` alternatives (a search allowed by ``.r`` or ``.s``); else the refusal."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        description = "a bearer access token is required"
        return refuse(401, "login", description,
                      headers={"WWW-Authenticate": _challenge("invalid_token", description)})
    try:
        token = state_of(request).tokens.check(value.strip())
    except TokenRejected as exc:
        return refuse(401, "login", exc.description,
                      headers={"WWW-Authenticate": _challenge("invalid_token", exc.description)})
    wanted = ((resource, permission), *alternatives)
    if not any(permits(token.scopes, kind, letter) for kind, letter in wanted):
        needed = f"system/{resource}.{permission}"
        description = f"this call needs scope {needed}; the token has {' '.join(token.scopes)}"
        return refuse(403, "forbidden", description,
                      headers={"WWW-Authenticate": _challenge("insufficient_scope", f"{needed} is required",
                                                              needed)})
    return token


async def gate(request: Request, resource: str, permission: str,
               *alternatives: tuple[str, str]) -> AccessToken | Response:
    """Injected latency and faults, then :func:`authorize`: the token to go on with, or the answer to send."""
    state = state_of(request)
    delay = state.faults.delay_seconds()
    if delay:
        await asyncio.sleep(delay)
    fault = state.faults.take()
    if fault is not None:
        state.stats.count("faults_injected")
        return fault_response(fault)
    return authorize(request, resource, permission, *alternatives)

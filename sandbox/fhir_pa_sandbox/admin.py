"""The ``/_sandbox/`` endpoints tests and demos use: stats, fault knobs, client registration, decide-pending.

``POST /_sandbox/decide-pending`` decides every pended item now (as if each review were over) and answers
``{"decided": N}``; the notifications it causes are queued and go out right after, in the background.

They change what the payer does, so they answer only callers on the loopback interface.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fhir_pa.errors import ConfigurationError
from fhir_pa_sandbox.clients import registration
from fhir_pa_sandbox.knobs import KnobError
from fhir_pa_sandbox.state import state_of
from fhir_pa_sandbox.tracking import decide_all


def _problem(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _from_loopback(request: Request) -> bool:
    if request.client is None:
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        raise KnobError("the body must be JSON") from exc


async def _admin_object(request: Request, fields: str) -> dict[str, Any] | Response:
    """The JSON object a loopback caller POSTed, or the refusal to send back."""
    if not _from_loopback(request):
        return _problem(403, "the sandbox admin endpoints answer loopback callers only")
    try:
        body = await _json_body(request)
    except KnobError as exc:
        return _problem(400, str(exc))
    if not isinstance(body, dict):
        return _problem(400, f"the body must be a JSON object with {fields}")
    return body


async def stats(request: Request) -> Response:
    if not _from_loopback(request):
        return _problem(403, "the sandbox admin endpoints answer loopback callers only")
    state = state_of(request)
    return JSONResponse({**state.stats.snapshot(), "faults": state.faults.snapshot(),
                         "clients_registered": len(state.clients), "pending_cases": len(state.cases.pending())})


async def faults(request: Request) -> Response:
    """``POST`` a fault command (see :mod:`fhir_pa_sandbox.knobs`); ``GET`` shows the current knobs."""
    if not _from_loopback(request):
        return _problem(403, "the sandbox admin endpoints answer loopback callers only")
    state = state_of(request)
    if request.method == "POST":
        try:
            state.apply_faults(await _json_body(request))
        except KnobError as exc:
            return _problem(400, str(exc))
    return JSONResponse(state.faults.snapshot())


async def register_client(request: Request) -> Response:
    """``POST {"client_id": ..., "jwks": {...}, "scopes": [...]}``: register (or replace) a client."""
    body = await _admin_object(request, "client_id, jwks and scopes")
    if isinstance(body, Response):
        return body
    try:
        reg = registration(body.get("client_id"), body.get("jwks"), body.get("scopes"))
    except ConfigurationError as exc:
        return _problem(400, exc.one_line())
    state_of(request).clients.register(reg)
    return JSONResponse({"client_id": reg.client_id, "scopes": list(reg.scopes)}, status_code=201)


async def decide_pending(request: Request) -> Response:
    """``POST``: decide every pended item now; answers how many were decided."""
    if not _from_loopback(request):
        return _problem(403, "the sandbox admin endpoints answer loopback callers only")
    decided = await run_in_threadpool(decide_all, state_of(request))
    return JSONResponse({"decided": decided})


async def ehr_token(request: Request) -> Response:
    """``POST {"scopes": [...], "lifetime": S}``: a token on the sandbox EHR (for the CLI and benchmarks, which run
    outside the sandbox's process; in-process callers use ``state.ehr`` as their token issuer)."""
    body = await _admin_object(request, "scopes and lifetime")
    if isinstance(body, Response):
        return body
    scopes, lifetime = body.get("scopes", ["user/*.rs"]), body.get("lifetime", 300)
    if not isinstance(scopes, list) or not all(isinstance(x, str) for x in scopes) or not isinstance(lifetime, int) \
            or not 0 < lifetime <= 86_400:
        return _problem(400, "give scopes (a list of strings) and lifetime (1 to 86400 seconds)")
    granted = state_of(request).ehr.issue(scopes=scopes, patient_id=body.get("patient"), lifetime=lifetime)
    return JSONResponse(granted.as_json(), status_code=201)

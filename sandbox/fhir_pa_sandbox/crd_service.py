"""The sandbox payer's CRD service: CDS Hooks discovery and hook endpoints (notes/crd.md).

- ``GET /crd/cds-services``: discovery (``data/crd_services.json``: one service per CRD hook, with prefetch
  templates the client must use).
- ``POST /crd/cds-services/{id}``: one hook call. The client JWT is verified against the JWKS registered for its
  ``iss`` (``aud`` must be this exact URL, jti single-use); the request is held to the Inferno CRD client checks
  (:func:`fhir_pa.crd.checks.check_hook_request`), 400 with an OperationOutcome otherwise. What prefetch lacks, the
  service reads from the client's ``fhirServer`` with the ``fhirAuthorization`` token. Orders are decided by
  ``data/crd_rules.json`` (:mod:`fhir_pa_sandbox.crd_decide`). The ``crd_latency_ms`` knob slows answers down.

Discovery needs a valid client JWT too (CDS Hooks: every call is signed).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fhir_pa.auth.verify import AssertionRejected, unverified_issuer
from fhir_pa.crd.checks import check_client_jwt, check_hook_request
from fhir_pa.errors import Issue
from fhir_pa_sandbox.config import packaged_data
from fhir_pa_sandbox.crd_decide import Member, decide
from fhir_pa_sandbox.outcome import OutcomeIssue, outcome_response
from fhir_pa_sandbox.state import SandboxState, base_url, state_of

Json = dict[str, Any]
CRD_PATH = "/crd/cds-services"
ORDER_KEYS = ("serviceRequests", "deviceRequests", "medicationRequests")


def load_services() -> Json:
    services: Json = json.loads(packaged_data("crd_services.json").read_text(encoding="utf-8"))
    return {"services": services["services"]}


def _refusal(status: int, issues: list[Issue]) -> Response:
    return outcome_response(status, *(OutcomeIssue("security" if status == 401 else "invalid", i.message, i.path,
                                                   rule=i.rule or None) for i in issues))


def _authenticate(request: Request, state: SandboxState, audience: str) -> Response | None:
    header = request.headers.get("authorization")
    token = header[len("Bearer "):].strip() if header and header.startswith("Bearer ") else ""
    try:
        client = state.clients.get(unverified_issuer(token)) if token else None
    except AssertionRejected:
        client = None
    if client is None:
        return _refusal(401, [Issue("Authorization", "a client JWT from a registered CDS client is required")])
    problems = check_client_jwt(header, audience=audience, jwks=client.jwks, issuer=client.client_id,
                                jti_cache=state.jti_cache, now=state.config.clock())
    return _refusal(401, problems) if problems else None


async def discovery(request: Request) -> Response:
    state = state_of(request)
    refused = _authenticate(request, state, f"{base_url(request)}{CRD_PATH}")
    if refused is not None:
        return refused
    state.stats.count("crd_discovery")
    return JSONResponse(state.crd_services)


def _entries(value: Any) -> list[Mapping[str, Any]]:
    entries = value.get("entry") if isinstance(value, Mapping) else None
    return [e["resource"] for e in entries or [] if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)]


async def _read_back(body: Mapping[str, Any], query: str, state: SandboxState) -> Any:
    """GET ``{fhirServer}/{query}`` with the client's token (the payer's own query into the EHR)."""
    server, auth = body.get("fhirServer"), body.get("fhirAuthorization")
    if not isinstance(server, str) or not isinstance(auth, Mapping) or not auth.get("access_token"):
        return None
    async with httpx.AsyncClient(timeout=5) as http:
        try:
            answer = await http.get(f"{server.rstrip('/')}/{query}",
                                    headers={"Authorization": f"Bearer {auth['access_token']}",
                                             "Accept": "application/fhir+json"})
        except httpx.HTTPError:
            return None
    state.stats.count("crd_ehr_reads")
    return answer.json() if answer.status_code == 200 else None


async def _member(body: Mapping[str, Any], state: SandboxState) -> Member:
    prefetch = body.get("prefetch") if isinstance(body.get("prefetch"), Mapping) else {}
    assert isinstance(prefetch, Mapping)
    coverages = _entries(prefetch.get("coverage"))
    if "coverage" not in prefetch:
        patient = (body.get("context") or {}).get("patientId")
        coverages = _entries(await _read_back(body, f"Coverage?patient={patient}&status=active", state))
    if not coverages:
        return Member(None, frozenset())
    coverage = coverages[0]
    ids = {i.get("value") for i in coverage.get("identifier", []) if isinstance(i, Mapping)}
    ids.add(coverage.get("subscriberId"))
    return Member(f"Coverage/{coverage.get('id')}", frozenset(i for i in ids if isinstance(i, str)))


async def _orders(hook: str, body: Mapping[str, Any], state: SandboxState) -> list[Mapping[str, Any]]:
    context = body.get("context") if isinstance(body.get("context"), Mapping) else {}
    assert isinstance(context, Mapping)
    prefetch = body.get("prefetch") if isinstance(body.get("prefetch"), Mapping) else {}
    assert isinstance(prefetch, Mapping)
    if hook in ("order-sign", "order-select"):
        orders = _entries(context.get("draftOrders"))
        if hook == "order-select":
            chosen = set(context.get("selections") or [])
            orders = [o for o in orders if f"{o.get('resourceType')}/{o.get('id')}" in chosen]
        return orders
    if hook == "order-dispatch":
        wanted = set(context.get("dispatchedOrders") or [])
        known = [r for key in ORDER_KEYS for r in _entries(prefetch.get(key))]
        found = [r for r in known if f"{r.get('resourceType')}/{r.get('id')}" in wanted]
        for ref in sorted(wanted - {f"{r.get('resourceType')}/{r.get('id')}" for r in found}):
            fetched = await _read_back(body, ref, state)
            if isinstance(fetched, Mapping):
                found.append(fetched)
        return found
    if hook == "appointment-book":
        return _entries(prefetch.get("serviceRequests"))
    return []


async def hook_call(request: Request) -> Response:
    state = state_of(request)
    service = next((s for s in state.crd_services["services"] if s["id"] == request.path_params["id"]), None)
    if service is None:
        return _refusal(404, [Issue("id", "no CDS service with this id")])
    refused = _authenticate(request, state, f"{base_url(request)}{CRD_PATH}/{service['id']}")
    if refused is not None:
        return refused
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _refusal(400, [Issue("$", "the hook request is not JSON")])
    if not isinstance(body, Mapping):
        return _refusal(400, [Issue("$", "the hook request must be a JSON object")])
    problems = check_hook_request(body, hook=service["hook"], advertised_prefetch=service["prefetch"])
    if problems:
        state.stats.count("crd_refused")
        return _refusal(400, problems)
    state.stats.count("crd_hooks", str(body.get("hookInstance")))
    delay = state.faults.crd_delay_seconds()
    if delay:
        await asyncio.sleep(delay)
    orders = await _orders(service["hook"], body, state)
    member = await _member(body, state) if orders else Member(None, frozenset())
    if orders and member.coverage_ref is None:
        # hook-13: the service cannot route or decide without exactly one Coverage (prefetch or read back).
        return _refusal(400, [Issue("$.prefetch.coverage", "no active Coverage for the patient: not in prefetch "
                                                           "and not readable at fhirServer", "hook-13")])
    return JSONResponse(decide(orders, member, state.crd_rules))

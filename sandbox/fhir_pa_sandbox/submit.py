"""``POST /fhir/Claim/$submit``: check the PAS request Bundle, decide it once, answer the response Bundle.

Order of work: token and scope (``system/Claim.c``), media type, JSON, Bundle; then idempotency, then the
client library's own PAS request checks (:func:`fhir_pa.pas.checks.check_request_bundle`; error-level
issues → 400 with one OperationOutcome issue each, ``expression`` = the FHIRPath of the problem).

Idempotency is keyed by the request Bundle identifier (``system|value``):

- the same identifier with the same content → the stored response, no new decision (a duplicate);
- the same identifier with different content but the same Claim identifier → also the stored response (a
  re-serialized retransmission of the same request: PAS clients resend, they do not re-ask);
- the same identifier with a different Claim → 400 OperationOutcome (code ``duplicate``): identifiers must
  not be reused for another request.

Success is 200 with ``application/fhir+json`` (what Inferno's payer answers; PAS allows any 2xx).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from fhir_pa.pas.checks import check_request_bundle
from fhir_pa_sandbox.decide import decide
from fhir_pa_sandbox.guard import gate
from fhir_pa_sandbox.outcome import FHIR_JSON, fhir_response, from_check, outcome_response, refuse
from fhir_pa_sandbox.responses import build_response
from fhir_pa_sandbox.state import SandboxState, fhir_base, state_of
from fhir_pa_sandbox.store import StoredDecision, fingerprint

log = logging.getLogger(__name__)

ACCEPTED_TYPES = (FHIR_JSON, "application/json")


def _identifier(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, Mapping) or not isinstance(value.get("value"), str):
        return None
    system = value.get("system")
    return f"{system if isinstance(system, str) else ''}|{value['value']}"


def claim_identifier(bundle: Mapping[str, Any]) -> str | None:
    """The first Claim identifier of a request Bundle as ``system|value``."""
    entries = bundle.get("entry")
    first = entries[0] if isinstance(entries, list) and entries else None
    resource = first.get("resource") if isinstance(first, Mapping) else None
    return _identifier(resource.get("identifier")) if isinstance(resource, Mapping) else None


async def _read_bundle(request: Request, state: SandboxState) -> Mapping[str, Any] | Response:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ACCEPTED_TYPES:
        got = media or "no Content-Type"
        return refuse(415, "not-supported", f"send the Bundle as {FHIR_JSON} (got {got})")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > state.config.max_body_bytes:
        return refuse(413, "too-costly", f"the request is larger than {state.config.max_body_bytes} bytes")
    body = await request.body()
    if len(body) > state.config.max_body_bytes:
        return refuse(413, "too-costly", f"the request is larger than {state.config.max_body_bytes} bytes")
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        return refuse(400, "structure", "the body is not UTF-8 JSON")
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        return refuse(400, "structure", f"the body is not JSON: {exc.msg} at {where}")
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        kind = data.get("resourceType") if isinstance(data, dict) else type(data).__name__
        return refuse(400, "structure", f"$submit takes a PAS request Bundle, not {kind!s}", "Bundle")
    return data


def _stored_answer(state: SandboxState, key: str | None, bundle: Mapping[str, Any],
                   digest: str) -> Response | None:
    """The answer for a retransmission of a request already decided, or None for a new request."""
    if key is None:
        return None
    stored = state.store.find(key)
    if stored is None:
        return None
    if stored.fingerprint == digest or stored.claim_identifier == claim_identifier(bundle):
        state.stats.count("duplicates", key)
        return fhir_response(stored.response)
    state.stats.count("rejected", key)
    return refuse(400, "duplicate", "this Bundle identifier was already used for a different request; "
                  "give every new request its own identifier", "Bundle.identifier")


async def submit(request: Request) -> Response:
    state = state_of(request)
    allowed = await gate(request, "Claim", "c")
    if isinstance(allowed, Response):
        return allowed
    bundle = await _read_bundle(request, state)
    if isinstance(bundle, Response):
        state.stats.count("received")
        state.stats.count("rejected")
        return bundle
    key = _identifier(bundle.get("identifier"))
    state.stats.count("received", key)
    digest = fingerprint(bundle)
    answer = _stored_answer(state, key, bundle, digest)
    if answer is not None:
        return answer
    if state.config.check_requests:
        issues = await run_in_threadpool(check_request_bundle, bundle)
        if any(issue.severity in ("error", "fatal") for issue in issues):
            state.stats.count("rejected", key)
            log.info("request %s refused: %d problem(s)", key, len(issues))
            return outcome_response(400, *(from_check(issue) for issue in issues))
        # another copy may have been decided while the checks ran in a worker thread
        answer = _stored_answer(state, key, bundle, digest)
        if answer is not None:
            return answer
    entries = bundle.get("entry")
    first = entries[0] if isinstance(entries, list) and entries else None
    claim = first.get("resource") if isinstance(first, Mapping) else None
    decisions = decide(claim if isinstance(claim, Mapping) else {}, state.rules)
    built = build_response(bundle, decisions, fhir_base=fhir_base(request))
    state.store.save(StoredDecision(key or built.claim_response["id"], digest, claim_identifier(bundle),
                                    built.bundle, built.claim_response["id"]),
                     built.claim_response, keyed=key is not None)
    state.stats.count("decided", key)
    log.info("request %s decided: %s", key, " ".join(
        f"{d.sequence}:{d.rule.action}" for d in decisions))
    return fhir_response(built.bundle)


async def read_claim_response(request: Request) -> Response:
    """``GET /fhir/ClaimResponse/{id}``: a stored ClaimResponse (needs ``system/ClaimResponse.r``)."""
    state = state_of(request)
    allowed = await gate(request, "ClaimResponse", "r")
    if isinstance(allowed, Response):
        return allowed
    state.stats.count("reads")
    resource = state.store.claim_response(request.path_params["id"])
    if resource is None:
        return refuse(404, "not-found", "no ClaimResponse with this id", "ClaimResponse.id")
    return fhir_response(resource)

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

Each new request opens a *case* (:mod:`fhir_pa_sandbox.cases`): pended items (A4) are decided later by the
rule's ``then`` (:mod:`fhir_pa_sandbox.tracking`), and ``GET /fhir/ClaimResponse/{id}`` always answers the
case's current version. A Claim Update (``Claim.related`` prior, :mod:`fhir_pa_sandbox.updates`) changes the
case it names: cancelled items get review action ``C``, a Claim-level certificationType ``3`` cancels
everything, added/changed items are decided again (and may pend again), unchanged ones keep their decision;
the answer is the case's current response (same ClaimResponse id, next ``meta.versionId``). Updating a denied
or cancelled request is refused: 400 OperationOutcome ``business-rule``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from fhir_pa.pas.checks import check_request_bundle
from fhir_pa_sandbox.body import ACCEPTED_TYPES, read_resource
from fhir_pa_sandbox.decide import decide
from fhir_pa_sandbox.guard import gate
from fhir_pa_sandbox.outcome import fhir_response, from_check, outcome_response, refuse
from fhir_pa_sandbox.state import SandboxState, fhir_base, state_of
from fhir_pa_sandbox.store import StoredDecision, fingerprint
from fhir_pa_sandbox.tracking import apply_update, open_case
from fhir_pa_sandbox.updates import UpdatePlan, UpdateProblem, read_update

log = logging.getLogger(__name__)

__all__ = ["ACCEPTED_TYPES", "claim_identifier", "read_claim_response", "submit"]


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
    return await read_resource(request, state, "Bundle", "$submit takes a PAS request Bundle")


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
    try:
        plan = read_update(bundle)
    except UpdateProblem as exc:
        state.stats.count("rejected", key)
        return refuse(400, "invalid", str(exc), exc.expression)
    if plan is not None:
        return _update(state, bundle, plan, key, digest)
    entries = bundle.get("entry")
    first = entries[0] if isinstance(entries, list) and entries else None
    claim = first.get("resource") if isinstance(first, Mapping) else None
    decisions = decide(claim if isinstance(claim, Mapping) else {}, state.rules)
    case = open_case(state, bundle, decisions, key=key, fhir_base=fhir_base(request))
    with state.cases.lock:
        answer_bundle, claim_response = case.snapshot(), dict(case.claim_response)
    state.store.save(StoredDecision(case.key, digest, claim_identifier(bundle), answer_bundle,
                                    case.claim_response_id), claim_response, keyed=key is not None)
    state.stats.count("decided", key)
    log.info("request %s decided: %s", key, " ".join(
        f"{d.sequence}:{d.rule.action}" for d in decisions))
    return fhir_response(answer_bundle)


def _update(state: SandboxState, bundle: Mapping[str, Any], plan: UpdatePlan, key: str | None,
            digest: str) -> Response:
    """A Claim Update: find the case, refuse closed ones, apply it, answer the case's current response."""
    case = state.cases.by_claim(plan.case_keys)
    if case is None:
        state.stats.count("rejected", key)
        return refuse(400, "business-rule", "the Claim this update refers to (Claim.related.claim) is not a request "
                      "this payer knows; submit a new request", "Bundle.entry[0].resource.related")
    with state.cases.lock:
        closed = case.closed()
    if closed is not None:
        state.stats.count("rejected", key)
        return refuse(400, "business-rule", f"a {closed} request cannot be updated; submit a new request",
                      "Bundle.entry[0].resource.related")
    apply_update(state, case, bundle, plan)
    with state.cases.lock:
        answer_bundle, claim_response = case.snapshot(), dict(case.claim_response)
    state.store.save(StoredDecision(key or case.claim_response_id, digest, claim_identifier(bundle), answer_bundle,
                                    case.claim_response_id), claim_response, keyed=key is not None)
    log.info("request %s updated (version %s)", case.key, claim_response["meta"]["versionId"])
    return fhir_response(answer_bundle)


async def read_claim_response(request: Request) -> Response:
    """``GET /fhir/ClaimResponse/{id}``: a stored ClaimResponse (needs ``system/ClaimResponse.r``)."""
    state = state_of(request)
    allowed = await gate(request, "ClaimResponse", "r")
    if isinstance(allowed, Response):
        return allowed
    state.stats.count("reads")
    case = state.cases.get(request.path_params["id"])
    if case is None:
        return refuse(404, "not-found", "no ClaimResponse with this id", "ClaimResponse.id")
    with state.cases.lock:
        resource = dict(case.claim_response)
    return fhir_response(resource, headers={"ETag": f'W/"{resource["meta"]["versionId"]}"'})

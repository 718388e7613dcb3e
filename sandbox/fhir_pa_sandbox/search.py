"""``GET /fhir/ClaimResponse?...``: find cases' current ClaimResponses (scope ``system/ClaimResponse.s`` or ``.r``).

Parameters (several combine with AND; a repeated one with AND too, a comma inside one value with OR):

- ``_id=<id>``: the ClaimResponse id;
- ``identifier=<token>``: an identifier of the ClaimResponse (a copy of the request Claim's identifiers);
- ``request.identifier=<token>``: an identifier of the request Claim, as echoed in
  ``ClaimResponse.request.identifier``; every Claim identifier the case has had (original and updates)
  matches, so a client can search by the one it knows.

``<token>`` is ``system|value``, ``|value`` (no system) or ``value`` (any system). The answer is a ``searchset``
Bundle: ``total``, a ``self`` link, and entries with ``fullUrl`` and ``search.mode = match``. A search with
none of these parameters (or an unknown one) is refused with 400: the sandbox does not list every case.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fhir_pa_sandbox.cases import Case
from fhir_pa_sandbox.guard import gate
from fhir_pa_sandbox.outcome import fhir_response, refuse
from fhir_pa_sandbox.state import state_of
from fhir_pa_sandbox.updates import identifier_keys

SUPPORTED = ("_id", "identifier", "request.identifier")
#: Result-shaping parameters a client may send; accepted and ignored.
IGNORED = ("_format", "_count", "_sort", "_total", "_summary")


def searchset(self_url: str, found: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """A searchset Bundle of ``(fullUrl, resource)`` matches."""
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset", "total": len(found),
            "link": [{"relation": "self", "url": self_url}],
            "entry": [{"fullUrl": url, "resource": resource, "search": {"mode": "match"}} for url, resource in found]}


def token_matches(token: str, keys: Iterable[str]) -> bool:
    """True when a search token (``system|value``, ``|value`` or ``value``) matches one of ``keys`` (system|value)."""
    alternatives = [part for part in token.split(",") if part]
    for alternative in alternatives:
        system, bar, value = alternative.rpartition("|")
        for key in keys:
            key_system, _, key_value = key.rpartition("|")
            if key_value == value and (not bar or key_system == system):
                return True
    return False


def case_matches(case: Case, params: Sequence[tuple[str, str]]) -> bool:
    """True when the case's current ClaimResponse satisfies every search parameter."""
    for name, value in params:
        if name == "_id" and case.claim_response_id not in value.split(","):
            return False
        if name == "identifier" and not token_matches(value, identifier_keys(case.claim_response)):
            return False
        if name == "request.identifier" and not token_matches(value, case.claim_identifiers):
            return False
    return True


async def search_claim_responses(request: Request) -> Response:
    state = state_of(request)
    allowed = await gate(request, "ClaimResponse", "s", ("ClaimResponse", "r"))
    if isinstance(allowed, Response):
        return allowed
    state.stats.count("searches")
    params = [(name, value) for name, value in request.query_params.multi_items() if name not in IGNORED]
    unknown = sorted({name for name, _ in params if name not in SUPPORTED})
    if unknown:
        return refuse(400, "not-supported", f"this payer cannot search ClaimResponse by {unknown[0]!r} "
                      f"(supported: {', '.join(SUPPORTED)})")
    if not params:
        return refuse(400, "required", f"give one of the search parameters {', '.join(SUPPORTED)}")
    with state.cases.lock:
        found = [(f"{case.fhir_base}/ClaimResponse/{case.claim_response_id}", dict(case.claim_response))
                 for case in state.cases.all() if case_matches(case, params)]
    return fhir_response(searchset(str(request.url), found))

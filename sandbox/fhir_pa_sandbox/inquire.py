"""``POST /fhir/Claim/$inquire``: where does a prior authorization stand (notes/pas.md §2.9)?

Scope ``system/Claim.c``, or ``system/ClaimResponse.r`` / ``.s``. The body is a PAS Inquiry Request Bundle
whose entry[0] is the Claim Inquiry with ``patient``, ``provider`` and ``insurer``. A case matches when:

- the patient matches: an identifier of the inquiry's Patient, or a member id on its Coverage, equals one the
  request had (values compared; Patient identifiers and Coverage identifiers/subscriberId);
- the provider matches: an NPI of the inquiry's provider equals one of the request's provider;
- and, when the inquiry gives them, ``authorizationNumber`` / ``administrationReferenceNumber`` extensions
  (Claim or item level) equal a number the payer gave the case (preAuthRef, item AUTH-/PEND- numbers, even
  outdated ones), and item ``productOrService`` codes are among the case's codes.

``Claim.identifier`` identifies the inquiry itself and is never a search key. The answer is 200
``Parameters`` with one parameter per match holding a PAS Inquiry Response Bundle (the current
ClaimInquiryResponse first, then the Patient and organizations); the parameter name follows the knob
``inquire_shape``: ``return`` (default, the OperationDefinition and Inferno), ``responseBundle`` (the IG
example), or ``bare`` (the first Inquiry Response Bundle itself, as 2.0.1 and the RI answer). No match → 404
OperationOutcome ``not-found``.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fhir_pa.pas import codes
from fhir_pa_sandbox.body import read_resource
from fhir_pa_sandbox.cases import Case, stamp
from fhir_pa_sandbox.guard import gate
from fhir_pa_sandbox.outcome import fhir_response, refuse
from fhir_pa_sandbox.parties import BundleFacts
from fhir_pa_sandbox.state import state_of

INQUIRY_RESPONSE_BUNDLE = codes.profile("pas-inquiry-response-bundle")
CLAIM_INQUIRY_RESPONSE = codes.profile("claiminquiryresponse")
NUMBER_EXTENSIONS = (codes.extension("authorizationNumber"), codes.extension("administrationReferenceNumber"))
Json = dict[str, Any]


@dataclass(frozen=True)
class Inquiry:
    """What an inquiry asks about (values only; never logged)."""

    patient_keys: frozenset[str]
    provider_npis: frozenset[str]
    numbers: frozenset[str]
    service_codes: frozenset[str]

    def matches(self, case: Case) -> bool:
        if not (self.patient_keys & case.patient_keys) or not (self.provider_npis & case.provider_npis):
            return False
        if self.numbers and not self.numbers & case.numbers:
            return False
        return not self.service_codes or bool(self.service_codes & case.service_codes)


def _numbers(holder: Mapping[str, Any]) -> Iterator[str]:
    extensions = holder.get("extension")
    for ext in extensions if isinstance(extensions, list) else []:
        if isinstance(ext, Mapping) and ext.get("url") in NUMBER_EXTENSIONS:
            value = ext.get("valueString") or ext.get("valueIdentifier", {}).get("value")
            if isinstance(value, str) and value:
                yield value


def read_inquiry(bundle: Mapping[str, Any]) -> Inquiry | tuple[str, str]:
    """The inquiry's keys, or (problem, FHIRPath) when it lacks what every inquiry must name."""
    facts = BundleFacts(bundle)
    if facts.claim.get("resourceType") != "Claim":
        return "entry[0] of an Inquiry Request Bundle must be the Claim Inquiry", "Bundle.entry[0].resource"
    for element in ("patient", "provider", "insurer"):
        if not isinstance(facts.claim.get(element), Mapping):
            return f"the Claim Inquiry must name its {element}", f"Bundle.entry[0].resource.{element}"
    patient_keys, npis = facts.patient_keys(), facts.provider_npis()
    if not patient_keys:
        return ("the inquiry's patient has no identifier or member id to search by",
                "Bundle.entry[0].resource.patient")
    if not npis:
        return "the inquiry's provider has no NPI to search by", "Bundle.entry[0].resource.provider"
    items = facts.claim.get("item")
    holders = [facts.claim, *(item for item in items if isinstance(item, Mapping))] if isinstance(
        items, list) else [facts.claim]
    numbers = frozenset(number for holder in holders for number in _numbers(holder))
    return Inquiry(patient_keys, npis, numbers, facts.service_codes())


def inquiry_response(case: Case, *, now: datetime | None = None) -> Json:
    """A PAS Inquiry Response Bundle for ``case``'s current decision (call with the case lock held)."""
    moment = now or datetime.now(UTC)
    claim_response = copy.deepcopy(case.claim_response)
    claim_response["meta"] = {**claim_response.get("meta", {}), "profile": [CLAIM_INQUIRY_RESPONSE]}
    echoed = case.response.get("entry", [])[1:]
    bundle_id = str(uuid.uuid4())
    return {"resourceType": "Bundle", "id": bundle_id, "meta": {"profile": [INQUIRY_RESPONSE_BUNDLE]},
            "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle_id}"},
            "type": "collection", "timestamp": stamp(moment),
            "entry": [{"fullUrl": f"{case.fhir_base}/ClaimResponse/{case.claim_response_id}",
                       "resource": claim_response}, *copy.deepcopy(echoed)]}


def wrap(bundles: list[Json], shape: str) -> Json:
    """The ``$inquire`` answer for ``bundles`` (at least one) in the knob's ``shape``."""
    if shape == "bare":
        return bundles[0]
    return {"resourceType": "Parameters", "parameter": [{"name": shape, "resource": b} for b in bundles]}


async def inquire(request: Request) -> Response:
    state = state_of(request)
    allowed = await gate(request, "Claim", "c", ("ClaimResponse", "r"), ("ClaimResponse", "s"))
    if isinstance(allowed, Response):
        return allowed
    bundle = await read_resource(request, state, "Bundle", "$inquire takes a PAS Inquiry Request Bundle")
    if isinstance(bundle, Response):
        return bundle
    state.stats.count("inquiries")
    inquiry = read_inquiry(bundle)
    if isinstance(inquiry, tuple):
        return refuse(400, "required", *inquiry)
    with state.cases.lock:
        found = [inquiry_response(case) for case in state.cases.all() if inquiry.matches(case)]
    if not found:
        return refuse(404, "not-found", "no prior authorization matches this inquiry")
    _, shape = state.faults.shapes()
    return fhir_response(wrap(found, shape))

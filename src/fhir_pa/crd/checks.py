"""The request checks of the Inferno CRD client suite (notes/crd.md §2, tests 2 to 9), as one function.

Our client runs nothing past these before sending (it builds requests that pass them); the tests run them over
every request the client builds, and the sandbox CRD service runs them over every request it receives, so a
regression shows up as a refused call rather than as a silent difference. The live reads Inferno makes on the
EHR's server (tests 8, 10 and 11) are the integration tests' job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fhir_pa.auth.verify import JtiCache, unverified_parts, verify_client_assertion
from fhir_pa.crd.hooks import (
    APPOINTMENT_BOOK,
    ENCOUNTER_DISCHARGE,
    ENCOUNTER_START,
    HOOKS,
    ORDER_DISPATCH,
    ORDER_SELECT,
    ORDER_SIGN,
    ORDER_TYPES,
)
from fhir_pa.errors import AuthError, Issue

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_REF = re.compile(r"^(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})$")
_READ_TEMPLATE = re.compile(r"^\s*(?P<type>[A-Z][A-Za-z]+)/\{\{")
_USER_TYPES = {
    ORDER_SIGN: ("Practitioner", "PractitionerRole"),
    ORDER_SELECT: ("Practitioner", "PractitionerRole"),
    APPOINTMENT_BOOK: ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson"),
    ENCOUNTER_START: ("Practitioner", "PractitionerRole"),
    ENCOUNTER_DISCHARGE: ("Practitioner", "PractitionerRole"),
}


def check_client_jwt(authorization: str | None, *, audience: str, jwks: Mapping[str, Any], issuer: str | None,
                     jti_cache: JtiCache | None = None, now: float | None = None) -> list[Issue]:
    """Inferno tests 2 to 5: a Bearer JWT whose header, signature and claims are what CDS Hooks asks for."""
    where = "Authorization"
    if not authorization or not authorization.startswith("Bearer "):
        return [Issue(where, "the request has no 'Authorization: Bearer <JWT>' header", "crd_decode_auth_token")]
    token = authorization[len("Bearer "):].strip()
    try:
        header, claims = unverified_parts(token)
    except AuthError:
        return [Issue(where, "the bearer token is not a signed JWT", "crd_decode_auth_token")]
    issues: list[Issue] = []
    kids = [k.get("kid") for k in jwks.get("keys", []) if isinstance(k, Mapping)]
    if not kids or any(not kid for kid in kids) or len(set(kids)) != len(kids):
        issues.append(Issue("jwks", "every JWK needs a kid and kids must be unique", "crd_retrieve_jwks"))
    if header.get("alg") in (None, "none") or header.get("typ") != "JWT" or header.get("kid") not in kids:
        issues.append(Issue(f"{where}.header", "alg must be set (not none), typ 'JWT', and kid one of the JWKS",
                            "crd_token_header"))
    missing = [name for name in ("iss", "aud", "exp", "iat", "jti") if name not in claims]
    if missing:
        issues.append(Issue(f"{where}.payload", f"missing claims: {', '.join(missing)}", "crd_token_payload"))
    try:
        verify_client_assertion(token, jwks=jwks, audience=audience, issuer=issuer, jti_cache=jti_cache, now=now)
    except AuthError as exc:
        issues.append(Issue(f"{where}.payload", exc.one_line().replace("client_assertion", "client JWT"),
                            "crd_token_payload"))
    return issues


def _check_required_fields(body: Mapping[str, Any], hook: str, issues: list[Issue]) -> None:
    rule = "crd_hook_request_required_fields"
    if body.get("hook") != hook:
        issues.append(Issue("$.hook", f"hook must be {hook!r}", rule))
    if not isinstance(body.get("hookInstance"), str) or not _UUID.match(body["hookInstance"]):
        issues.append(Issue("$.hookInstance", "hookInstance must be a UUID", rule))
    if not isinstance(body.get("context"), Mapping):
        issues.append(Issue("$.context", "context must be an object", rule))
    if "fhirAuthorization" in body and "fhirServer" not in body:
        issues.append(Issue("$.fhirServer", "fhirServer is required with fhirAuthorization", rule))


def _check_optional_fields(body: Mapping[str, Any], issues: list[Issue]) -> None:
    rule = "crd_hook_request_optional_fields"
    if "fhirServer" in body and (not isinstance(body["fhirServer"], str) or not body["fhirServer"]):
        issues.append(Issue("$.fhirServer", "fhirServer must be a non-empty string", rule))
    if "prefetch" in body and (not isinstance(body["prefetch"], Mapping) or not body["prefetch"]):
        issues.append(Issue("$.prefetch", "prefetch must be a non-empty object", rule))
    if "fhirAuthorization" not in body:
        return
    auth = body["fhirAuthorization"]
    if not isinstance(auth, Mapping):
        issues.append(Issue("$.fhirAuthorization", "fhirAuthorization must be an object", rule))
        return
    for name in ("access_token", "scope", "subject"):
        if not isinstance(auth.get(name), str) or not auth[name].strip():
            issues.append(Issue(f"$.fhirAuthorization.{name}", f"{name} must be a non-empty string", rule))
    if auth.get("token_type") != "Bearer":
        issues.append(Issue("$.fhirAuthorization.token_type", "token_type must be 'Bearer'", rule))
    if not isinstance(auth.get("expires_in"), int) or isinstance(auth.get("expires_in"), bool):
        issues.append(Issue("$.fhirAuthorization.expires_in", "expires_in must be an integer", rule))
    blank = [k for k, v in auth.items() if v in (None, "", [], {})]
    if blank:
        issues.append(Issue("$.fhirAuthorization", f"blank fields: {', '.join(sorted(blank))}", rule))


def _bundle_refs(bundle: Any, where: str, allowed: tuple[str, ...], issues: list[Issue]) -> set[str]:
    rule = "crd_hook_request_valid_context"
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        issues.append(Issue(where, "must be a Bundle", rule))
        return set()
    refs: set[str] = set()
    raw = bundle.get("entry")
    entries: list[Any] = raw if isinstance(raw, list) else []
    for n, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping) or not isinstance(resource.get("id"), str):
            issues.append(Issue(f"{where}.entry[{n}]", "every entry needs a resource with an id", rule))
            continue
        if not isinstance(entry.get("fullUrl"), str):
            issues.append(Issue(f"{where}.entry[{n}].fullUrl", "every entry needs a fullUrl", rule))
        refs.add(f"{resource.get('resourceType')}/{resource['id']}")
    if not any(ref.split("/")[0] in allowed for ref in refs):
        issues.append(Issue(where, f"must hold at least one of {', '.join(allowed)}", rule))
    return refs


def _check_context(body: Mapping[str, Any], hook: str, issues: list[Issue]) -> None:
    rule = "crd_hook_request_valid_context"
    context = body.get("context")
    if not isinstance(context, Mapping):
        return
    required = {"patientId"} | ({"userId"} if hook != ORDER_DISPATCH else set())
    required |= {ORDER_SIGN: {"draftOrders"}, ORDER_SELECT: {"draftOrders", "selections"},
                 ORDER_DISPATCH: {"dispatchedOrders", "performer"}, APPOINTMENT_BOOK: {"appointments"},
                 ENCOUNTER_START: {"encounterId"}, ENCOUNTER_DISCHARGE: {"encounterId"}}.get(hook, set())
    for name in sorted(required - set(context)):
        issues.append(Issue(f"$.context.{name}", f"{name} is required for {hook}", rule))
    for name in ("patientId", "encounterId"):
        value = context.get(name)
        if value is not None and (not isinstance(value, str) or not _ID.match(value)):
            issues.append(Issue(f"$.context.{name}", f"{name} must be a plain id without '/'", rule))
    user = context.get("userId")
    if user is not None:
        match = _REF.match(user) if isinstance(user, str) else None
        if not match or match.group("type") not in _USER_TYPES.get(hook, ()):
            issues.append(Issue("$.context.userId", f"userId must be a {' or '.join(_USER_TYPES.get(hook, ()))} "
                                                    "reference", rule))
    if hook in (ORDER_SIGN, ORDER_SELECT) and "draftOrders" in context:
        refs = _bundle_refs(context["draftOrders"], "$.context.draftOrders", ORDER_TYPES, issues)
        if hook == ORDER_SELECT:
            selections = context.get("selections")
            if not isinstance(selections, list) or not set(selections) <= refs:
                issues.append(Issue("$.context.selections", "selections must all be draft orders", rule))
    if hook == APPOINTMENT_BOOK and "appointments" in context:
        _bundle_refs(context["appointments"], "$.context.appointments", ("Appointment",), issues)
        for n, entry in enumerate(context["appointments"].get("entry", []) or []):
            if (entry.get("resource") or {}).get("status") != "proposed":
                issues.append(Issue(f"$.context.appointments.entry[{n}].resource.status",
                                    "appointments must be proposed", rule))
    if hook == ORDER_DISPATCH:
        dispatched = context.get("dispatchedOrders")
        if not isinstance(dispatched, list) or not dispatched or not all(
                isinstance(r, str) and _REF.match(r) for r in dispatched):
            issues.append(Issue("$.context.dispatchedOrders", "dispatchedOrders must be a list of Type/id", rule))
        if "performer" in context and not (isinstance(context["performer"], str) and _REF.match(context["performer"])):
            issues.append(Issue("$.context.performer", "performer must be Type/id", rule))


def _check_prefetch(body: Mapping[str, Any], advertised: Mapping[str, str], issues: list[Issue]) -> None:
    rule = "crd_hook_request_valid_prefetch"
    prefetch = body.get("prefetch")
    if not isinstance(prefetch, Mapping):
        return
    patient_id = (body.get("context") or {}).get("patientId")
    for key, value in prefetch.items():
        where = f"$.prefetch.{key}"
        if key not in advertised:
            issues.append(Issue(where, "the service did not ask for this key", rule))
            continue
        if value is None:
            continue  # CDS Hooks: null means "no data"
        if not isinstance(value, Mapping):
            issues.append(Issue(where, "each prefetch value must be a FHIR resource", rule))
            continue
        read = _READ_TEMPLATE.match(advertised[key])
        if read and value.get("resourceType") != read.group("type"):
            issues.append(Issue(where, f"a read template yields a {read.group('type')}", rule))
        if key == "coverage" or advertised[key].startswith("Coverage?"):
            _check_coverage(value, where, patient_id, issues)


def _check_coverage(value: Mapping[str, Any], where: str, patient_id: Any, issues: list[Issue]) -> None:
    rule = "crd_hook_request_valid_prefetch"
    entries = value.get("entry") if value.get("resourceType") == "Bundle" else None
    coverages = [e.get("resource") for e in entries or [] if isinstance(e, Mapping)]
    if not coverages:
        issues.append(Issue(where, "coverage must be a non-empty Bundle of Coverage", rule))
        return
    if len(coverages) != 1:
        issues.append(Issue(where, "exactly one Coverage, the primary one, is sent (CRD 2.2)", rule))
    for n, coverage in enumerate(coverages):
        at = f"{where}.entry[{n}].resource"
        if not isinstance(coverage, Mapping) or coverage.get("resourceType") != "Coverage":
            issues.append(Issue(at, "must be a Coverage", rule))
            continue
        if coverage.get("status") != "active":
            issues.append(Issue(f"{at}.status", "the Coverage must be active", rule))
        if (coverage.get("beneficiary") or {}).get("reference") != f"Patient/{patient_id}":
            issues.append(Issue(f"{at}.beneficiary", "beneficiary must be Patient/{patientId}", rule))


def check_hook_request(body: Mapping[str, Any], *, hook: str, advertised_prefetch: Mapping[str, str]) -> list[Issue]:
    """Inferno tests 6 to 9 over a hook request body; an empty list when it passes."""
    if hook not in HOOKS:
        return [Issue("$.hook", f"unknown hook {hook!r}", "crd_hook_request_required_fields")]
    issues: list[Issue] = []
    _check_required_fields(body, hook, issues)
    _check_optional_fields(body, issues)
    _check_context(body, hook, issues)
    _check_prefetch(body, advertised_prefetch, issues)
    return issues


__all__ = ["check_client_jwt", "check_hook_request"]

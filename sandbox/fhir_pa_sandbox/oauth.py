"""SMART Backend Services, server side: discovery and the token endpoint.

``POST /auth/token`` takes a form body (client_credentials + a private_key_jwt client assertion), finds the
client by the assertion's ``iss``, verifies the assertion with :mod:`fhir_pa.auth.verify` against that
client's registered JWKS (audience = this exact token URL, replayed ``jti`` refused), grants the requested
scopes its registration covers, and answers an opaque token. Failures are RFC 6749 §5.2 JSON errors.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fhir_pa.auth.verify import AssertionRejected, unverified_issuer, verify_client_assertion
from fhir_pa_sandbox.scopes import grantable
from fhir_pa_sandbox.state import state_of, token_url

log = logging.getLogger(__name__)

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SIGNING_ALGS = ("RS384", "ES384")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_FORM_BYTES = 64_000


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    """An RFC 6749 §5.2 error answer; client-authentication failures use 401."""
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers=_NO_STORE)


async def smart_configuration(request: Request) -> Response:
    """``GET /fhir/.well-known/smart-configuration``: where and how to get a token."""
    state = state_of(request)
    return JSONResponse({
        "token_endpoint": token_url(request),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGS),
        "scopes_supported": list(state.config.scopes_supported),
        "capabilities": ["client-confidential-asymmetric", "permission-v2"],
    })


async def _form(request: Request) -> dict[str, str] | Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return oauth_error("invalid_request", "the token request must be application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        return oauth_error("invalid_request", "the token request is too large")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return oauth_error("invalid_request", "the token request body is not a valid form")
    repeated = sorted(name for name, values in fields.items() if len(values) > 1)
    if repeated:
        return oauth_error("invalid_request", f"parameter {repeated[0]!r} is given more than once")
    return {name: values[0] for name, values in fields.items()}


def _rejected(exc: AssertionRejected) -> Response:
    status = 401 if exc.error == "invalid_client" else 400
    return oauth_error(exc.error, exc.description, status)


async def token_endpoint(request: Request) -> Response:
    """``POST /auth/token``: exchange a signed client assertion for an access token."""
    state = state_of(request)
    form = await _form(request)
    if isinstance(form, Response):
        state.stats.count("token_refused")
        return form
    answer = _grant(request, form)
    state.stats.count("tokens_issued" if answer.status_code == 200 else "token_refused")
    return answer


def _grant(request: Request, form: dict[str, str]) -> Response:
    state = state_of(request)
    if form.get("grant_type") != "client_credentials":
        return oauth_error("unsupported_grant_type", "only grant_type=client_credentials is supported")
    if form.get("client_assertion_type") != JWT_BEARER:
        return oauth_error("invalid_client",
                           f"client authentication must use client_assertion_type={JWT_BEARER}", 401)
    assertion = form.get("client_assertion", "")
    if not assertion:
        return oauth_error("invalid_client", "client_assertion is missing", 401)
    try:
        client_id = unverified_issuer(assertion)
    except AssertionRejected as exc:
        return _rejected(exc)
    if form.get("client_id") not in (None, client_id):
        return oauth_error("invalid_client", "client_id does not match the assertion's iss", 401)
    registration = state.clients.get(client_id)
    if registration is None:
        return oauth_error("invalid_client", "unknown client: no registration for this iss", 401)
    try:
        claims = verify_client_assertion(
            assertion, jwks=registration.jwks, audience=token_url(request), issuer=registration.client_id,
            jti_cache=state.jti_cache, max_lifetime=state.config.max_assertion_lifetime,
            leeway=state.config.leeway, algorithms=SIGNING_ALGS, now=state.config.clock())
    except AssertionRejected as exc:
        log.info("client assertion refused for %r: %s", client_id, exc.error)
        return _rejected(exc)
    requested = form.get("scope", "").split()
    if not requested:
        return oauth_error("invalid_scope", "scope is required (for example system/Claim.c)")
    granted = grantable(requested, registration.scopes)
    if not granted:
        return oauth_error("invalid_scope", "none of the requested scopes is allowed for this client")
    value, _ = state.tokens.issue(registration.client_id, granted, state.config.token_lifetime)
    answer: dict[str, Any] = {"access_token": value, "token_type": "bearer",
                              "expires_in": state.config.token_lifetime, "scope": " ".join(granted)}
    log.info("token issued to %r (jti %r) for %s", client_id, claims.get("jti"), answer["scope"])
    return JSONResponse(answer, headers=_NO_STORE)

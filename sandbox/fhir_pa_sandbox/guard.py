"""Bearer-token checks in front of every FHIR API call.

No token, an unknown token or an expired one → 401 with ``WWW-Authenticate: Bearer error="invalid_token"``;
a live token without the scope the call needs → 403 (``insufficient_scope``). Both bodies are
OperationOutcomes, as PAS wants for every 4xx. :func:`gate` runs first on every FHIR API call: the test
knobs' latency and injected faults, then these checks, then the knobs that act once the call passed them
(token expiry, and the answer faults :class:`AnswerFaults` applies to the answer the handler produced).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_pa_sandbox.knobs import AnswerFault, fault_response
from fhir_pa_sandbox.outcome import refuse
from fhir_pa_sandbox.scopes import permits
from fhir_pa_sandbox.state import state_of
from fhir_pa_sandbox.tokens import AccessToken, TokenRejected

REALM = "fhir-pa-sandbox"
#: Where :func:`gate` leaves the answer fault drawn for a call, in the request's ASGI scope.
ANSWER_FAULT = "fhir_pa_sandbox.answer_fault"


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
    """Injected latency and faults, then :func:`authorize`: the token to go on with, or the answer to send.

    A call that passed the checks counts towards ``token_expiry_every`` (the expiry it triggers ends the tokens
    after this call, which goes on) and draws its answer fault, applied by :class:`AnswerFaults` once the
    handler has done its work and produced its answer.
    """
    state = state_of(request)
    delay = state.faults.delay_seconds()
    if delay:
        await asyncio.sleep(delay)
    fault = state.faults.take()
    if fault is not None:
        state.stats.count("faults_injected")
        return fault_response(fault)
    allowed = authorize(request, resource, permission, *alternatives)
    if isinstance(allowed, Response):
        return allowed
    if state.faults.authenticated_call():
        state.expire_tokens()
    answer_fault = state.faults.take_answer_fault()
    if answer_fault is not None:
        state.stats.count("faults_injected")
        state.stats.count("answers_delayed" if answer_fault.status is None else "answers_replaced")
        request.scope[ANSWER_FAULT] = answer_fault
    return allowed


class AnswerFaults:
    """ASGI middleware: holds back or replaces the answer of a call :func:`gate` drew an answer fault for.

    It acts on the answer's first message, so everything the handler did (a ``$submit`` decision stored) is done
    before the answer is delayed or lost. A replaced answer is a bare status with no body (PAS: a 5xx has no
    OperationOutcome); the real answer's body is dropped.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def answer(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the real answer's body: lost
            fault: AnswerFault | None = scope.get(ANSWER_FAULT)
            if fault is None or message["type"] != "http.response.start":
                await send(message)
                return
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is None:
                await send(message)
                return
            replaced = True
            await send({"type": "http.response.start", "status": fault.status,
                        "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app(scope, receive, answer)

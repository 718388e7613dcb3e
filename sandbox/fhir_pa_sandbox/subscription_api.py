"""The Subscription endpoints (R4 backport; rules in :mod:`fhir_pa_sandbox.subscriptions`).

- ``POST /fhir/Subscription`` (``system/Subscription.c``): checked, stored with a new id and status
  ``requested``, answered 201 with ``Location``; then a handshake is POSTed to the endpoint (every
  ``channel.header`` line sent as a header): 2xx → ``active``, otherwise ``error`` with ``error`` text.
- ``GET /fhir/Subscription/{id}`` (``.r``): the Subscription as the payer holds it (current status).
- ``PUT /fhir/Subscription/{id}`` (``.u``): a re-request: new content, status ``requested``, a new handshake.
  Unknown id → 404 (create it with POST).
- ``DELETE /fhir/Subscription/{id}`` (``.d``): 204; no more notifications.
- ``GET /fhir/Subscription`` (``.s`` or ``.r``): searchset of the calling client's Subscriptions.

A client sees only its own Subscriptions (another client's id is 404).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fhir_pa_sandbox.body import read_resource
from fhir_pa_sandbox.guard import gate
from fhir_pa_sandbox.outcome import fhir_response, outcome_response, refuse
from fhir_pa_sandbox.search import searchset
from fhir_pa_sandbox.state import fhir_base, state_of
from fhir_pa_sandbox.subscriptions import HeldSubscription, read_subscription
from fhir_pa_sandbox.tokens import AccessToken


def _location(request: Request, held: HeldSubscription) -> dict[str, str]:
    return {"Location": f"{fhir_base(request)}/Subscription/{held.id}/_history/{held.version}",
            "ETag": f'W/"{held.version}"'}


async def _checked(request: Request) -> tuple[Any, Response | None]:
    state = state_of(request)
    resource = await read_resource(request, state, "Subscription", "this endpoint takes a Subscription")
    if isinstance(resource, Response):
        return None, resource
    wanted = read_subscription(resource)
    if isinstance(wanted, list):
        return None, outcome_response(400, *wanted)
    return (resource, wanted), None


async def create(request: Request) -> Response:
    state = state_of(request)
    token = await gate(request, "Subscription", "c")
    if not isinstance(token, AccessToken):
        return token
    checked, refusal = await _checked(request)
    if refusal is not None:
        return refusal
    resource, wanted = checked
    held = state.subscriptions.create(token.client_id, resource, wanted)
    state.stats.count("subscriptions_created")
    answer = fhir_response(held.as_resource(), 201, _location(request, held))
    state.deliverer.handshake(held, fhir_base(request))
    return answer


def _mine(request: Request, token: AccessToken) -> HeldSubscription | Response:
    held = state_of(request).subscriptions.get(request.path_params["id"], token.client_id)
    if held is None:
        return refuse(404, "not-found", "no Subscription with this id", "Subscription.id")
    return held


async def read(request: Request) -> Response:
    token = await gate(request, "Subscription", "r")
    if not isinstance(token, AccessToken):
        return token
    held = _mine(request, token)
    if not isinstance(held, HeldSubscription):
        return held
    return fhir_response(held.as_resource(), headers={"ETag": f'W/"{held.version}"'})


async def update(request: Request) -> Response:
    state = state_of(request)
    token = await gate(request, "Subscription", "u")
    if not isinstance(token, AccessToken):
        return token
    held = _mine(request, token)
    if not isinstance(held, HeldSubscription):
        return held
    checked, refusal = await _checked(request)
    if refusal is not None:
        return refusal
    resource, wanted = checked
    if resource.get("id") not in (None, held.id):
        return refuse(400, "invalid", "the Subscription id in the body differs from the one in the URL",
                      "Subscription.id")
    state.subscriptions.replace(held, resource, wanted)
    answer = fhir_response(held.as_resource(), 200, _location(request, held))
    state.deliverer.handshake(held, fhir_base(request))
    return answer


async def delete(request: Request) -> Response:
    token = await gate(request, "Subscription", "d")
    if not isinstance(token, AccessToken):
        return token
    held = _mine(request, token)
    if not isinstance(held, HeldSubscription):
        return held
    state_of(request).subscriptions.delete(held.id)
    held.set_status("off")
    return Response(status_code=204)


async def search(request: Request) -> Response:
    token = await gate(request, "Subscription", "s", ("Subscription", "r"))
    if not isinstance(token, AccessToken):
        return token
    base = fhir_base(request)
    held = state_of(request).subscriptions.of_client(token.client_id)
    return fhir_response(searchset(str(request.url), [(f"{base}/Subscription/{h.id}", h.as_resource())
                                                      for h in held]))

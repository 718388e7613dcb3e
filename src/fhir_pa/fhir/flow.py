"""Protocol flows free of I/O style: one generator, driven by a sync or an async runner.

A flow yields :class:`Call` (send this request; the response is sent back in, a transport error is thrown
in) or :class:`Wait` (sleep this long), and returns its result. The protocol logic of polling, subscribing and
tracking is written once; :func:`run_sync` and :func:`run_async` are the only places that know whether the
caller holds an ``httpx.Client`` or an ``httpx.AsyncClient``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

import httpx

from fhir_pa.errors import TransportError

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    request: httpx.Request


@dataclass(frozen=True)
class Wait:
    seconds: float


Action = Call | Wait
#: A protocol flow returning ``T``.
Flow = Generator[Action, httpx.Response | None, T]


def run_sync(flow: Flow[T], http: httpx.Client, auth: httpx.Auth | None,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """Drive ``flow`` with a blocking client."""
    try:
        action = next(flow)
        while True:
            if isinstance(action, Wait):
                sleep(max(0.0, action.seconds))
                action = flow.send(None)
                continue
            try:
                response = http.send(action.request, auth=auth) if auth is not None else http.send(action.request)
            except httpx.TransportError as exc:
                action = flow.throw(exc)
                continue
            action = flow.send(response)
    except StopIteration as stop:
        result: T = stop.value
        return result


async def run_async(flow: Flow[T], http: httpx.AsyncClient, auth: httpx.Auth | None) -> T:
    """Drive ``flow`` with an async client; waits yield to the event loop."""
    try:
        action = next(flow)
        while True:
            if isinstance(action, Wait):
                await asyncio.sleep(max(0.0, action.seconds))
                action = flow.send(None)
                continue
            try:
                if auth is not None:
                    response = await http.send(action.request, auth=auth)
                else:
                    response = await http.send(action.request)
            except httpx.TransportError as exc:
                action = flow.throw(exc)
                continue
            action = flow.send(response)
    except StopIteration as stop:
        result: T = stop.value
        return result


def call(request: httpx.Request) -> Generator[Action, httpx.Response | None, httpx.Response]:
    """``response = yield from call(request)``: one exchange inside a flow."""
    response = yield Call(request)
    if response is None:  # pragma: no cover - the runners always send a response back for a Call
        raise RuntimeError("flow runner returned no response to a Call")
    return response


def exchange(request: httpx.Request) -> Generator[Action, httpx.Response | None, httpx.Response]:
    """Like :func:`call`, for flows that do not handle transport failures themselves: one becomes the typed
    :class:`~fhir_pa.errors.TransportError` (naming the host and path, never the query, which may hold ids)."""
    try:
        return (yield from call(request))
    except httpx.TransportError as exc:
        url = request.url
        raise TransportError(f"no answer from {url.scheme}://{url.host}{url.path} ({type(exc).__name__})"
                             ) from None

"""Send handshakes and event notifications to subscribers' endpoints, from the scheduler thread.

Each POST carries every ``channel.header`` line as an HTTP header and ``channel.payload`` as Content-Type.
A handshake answered 2xx makes the Subscription ``active``; anything else makes it ``error``. An event
notification gets two quick attempts; if neither is answered 2xx the Subscription goes to ``error`` and the
event is **lost**: the sandbox never re-delivers. That is deliberate (notes/pas.md §2.6: recovery is the
subscriber's job): a client must notice the ``error`` status, re-request the Subscription (PUT, status
``requested``) and poll (read, search or ``$inquire``) for what it missed. Events for a Subscription that is not
``active`` are lost the same way.

The notification fault knobs act here: dropped events are numbered but never sent (so the receiver sees a gap
in event numbers), duplicated ones are sent twice, held ones go out right after the next event.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx

from fhir_pa_sandbox.knobs import FaultKnobs
from fhir_pa_sandbox.notify import event_notification, handshake
from fhir_pa_sandbox.scheduler import Scheduler
from fhir_pa_sandbox.stats import Stats
from fhir_pa_sandbox.subscriptions import HeldSubscription

log = logging.getLogger(__name__)

ATTEMPTS = 2
RETRY_PAUSE = 0.1
#: Seconds a held (reordered) notification waits for a follower before it goes out anyway.
HOLD_LIMIT = 2.0

Outgoing = tuple[HeldSubscription, bytes]


def subscription_url(fhir_base: str, held: HeldSubscription) -> str:
    return f"{fhir_base}/Subscription/{held.id}"


def _body(bundle: Mapping[str, Any]) -> bytes:
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Deliverer:
    def __init__(self, scheduler: Scheduler, knobs: FaultKnobs, stats: Stats, *, timeout: float = 5.0) -> None:
        self._scheduler = scheduler
        self._knobs = knobs
        self._stats = stats
        self._timeout = timeout
        self._http: httpx.Client | None = None
        self._held: Outgoing | None = None

    # --- queued from handlers and the scheduler ---------------------------------------------------

    def handshake(self, held: HeldSubscription, fhir_base: str) -> None:
        """Queue the handshake of a new or re-requested Subscription."""
        version = held.version
        body = _body(handshake(subscription_url(fhir_base, held)))
        self._scheduler.soon(lambda: self._shake(held, version, body))

    def event(self, held: HeldSubscription, fhir_base: str, response: Mapping[str, Any]) -> None:
        """Number an event for ``held`` and queue its notification (subject to the notification knobs)."""
        number = held.next_event()
        notification_shape, _ = self._knobs.shapes()
        shape = "id-only" if held.request.content == "id-only" else notification_shape
        body = _body(event_notification(subscription_url(fhir_base, held), response, event_number=number,
                                        shape=shape))
        fate = self._knobs.notification_fate()
        if fate == "drop":
            self._stats.count("notifications_dropped")
            log.info("event %d for subscription %s dropped by the fault knob", number, held.id)
            return
        outgoing = (held, body)
        if fate == "hold":
            self._scheduler.soon(lambda: self._hold(outgoing))
            return
        self._scheduler.soon(lambda: self._send(outgoing))
        if fate == "duplicate":
            self._scheduler.soon(lambda: self._send(outgoing))

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # --- run in the scheduler thread --------------------------------------------------------------

    def _post(self, held: HeldSubscription, body: bytes) -> str | None:
        """POST ``body`` to the endpoint; None when answered 2xx, else what went wrong (no patient data)."""
        if self._http is None:
            self._http = httpx.Client(timeout=self._timeout)
        headers = {name: value for name, value in held.request.headers}
        headers["Content-Type"] = held.request.media_type
        problem = "not attempted"
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(RETRY_PAUSE)
            try:
                answer = self._http.post(held.request.endpoint, content=body, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"the endpoint could not be reached ({type(exc).__name__})"
                continue
            if 200 <= answer.status_code < 300:
                return None
            problem = f"the endpoint answered HTTP {answer.status_code}"
        return problem

    def _shake(self, held: HeldSubscription, version: int, body: bytes) -> None:
        if held.version != version or held.status != "requested":
            return  # re-requested again (or deleted) meanwhile: the newer handshake decides
        self._stats.count("handshakes")
        problem = self._post(held, body)
        if problem is None:
            held.set_status("active")
        else:
            held.set_status("error", f"handshake failed: {problem}")
        log.info("subscription %s handshake: %s", held.id, held.status)

    def _send(self, outgoing: Outgoing) -> None:
        held, body = outgoing
        if held.status != "active":
            self._stats.count("notifications_failed")
            return
        problem = self._post(held, body)
        if problem is None:
            self._stats.count("notifications_sent")
        else:
            self._stats.count("notifications_failed")
            held.set_status("error", f"event notification failed: {problem}")
            log.info("subscription %s set to error: %s", held.id, problem)
        waiting, self._held = self._held, None
        if waiting is not None:
            self._send(waiting)

    def _hold(self, outgoing: Outgoing) -> None:
        earlier, self._held = self._held, None
        if earlier is not None:  # two holds in a row: the earlier one goes now, the newer waits
            self._send(earlier)
        self._held = outgoing
        self._scheduler.at(HOLD_LIMIT, lambda: self._release(outgoing))

    def _release(self, outgoing: Outgoing) -> None:
        if self._held is outgoing:
            self._held = None
            self._send(outgoing)

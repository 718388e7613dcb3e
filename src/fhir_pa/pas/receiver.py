"""The notification receiver: an ASGI app an EHR mounts in its own web app, or runs with ``fhir-pa listen``.

For every POST it (1) authenticates the payer by the bearer token our Subscription asked it to send (compared
by hash against the ledger), (2) stores the exact body in the ledger, (3) answers ``200`` at once, and only then
(4) processes what is stored, in arrival order and one at a time (:func:`process_notification`): handshakes
and heartbeats are noted, each event's decision is matched to its request and applied through
:meth:`Ledger.advance`, which drops duplicates (event number and focus already seen) and stale events arriving
out of order. A crash between (3) and (4) loses nothing: :meth:`NotificationReceiver.recover` processes
whatever was stored but not yet processed.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fhir_pa.errors import ConfigurationError, FhirPaError
from fhir_pa.ledger.store import APPLIED, Ledger, LedgerRecord, now_utc
from fhir_pa.ledger.subscriptions import SubscriptionRecord
from fhir_pa.pas.decision import PasDecision
from fhir_pa.pas.notification import NotificationEvent, NotificationType, parse_notification

log = logging.getLogger(__name__)

MAX_BODY = 20_000_000


@dataclass(frozen=True)
class DecisionUpdate:
    """A change in where a request stands, as the receiver or the tracker saw it."""

    record: LedgerRecord
    decision: PasDecision
    channel: str


#: A user callback; may be a plain function or a coroutine function.
OnUpdate = Callable[[DecisionUpdate], Awaitable[None] | None]


def _outcome(status: int, code: str, text: str) -> JSONResponse:
    return JSONResponse({"resourceType": "OperationOutcome",
                         "issue": [{"severity": "error", "code": code, "diagnostics": text}]},
                        status_code=status, media_type="application/fhir+json")


_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def _public_jwks(jwks: Mapping[str, Any]) -> dict[str, Any]:
    """The JWKS to publish; refuses one holding private key material (private keys never leave the key file)."""
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys or any(
            not isinstance(k, Mapping) or any(m in k for m in _PRIVATE_MEMBERS) for k in keys):
        raise ConfigurationError("publish a JWKS of public keys only (no private members)")
    return {"keys": [dict(k) for k in keys]}


def _focus_id(focus: str | None) -> str | None:
    if not focus or "ClaimResponse/" not in focus:
        return None
    return focus.split("ClaimResponse/", 1)[1].split("/")[0] or None


def _match(ledger: Ledger, event: NotificationEvent, payer: str | None) -> LedgerRecord | None:
    decision = event.decision
    if decision is None:
        return ledger.match(claim_response_id=_focus_id(event.focus), payer=payer)
    identifiers = [*decision.request_identifiers]
    return ledger.match(identifiers=identifiers, claim_response_id=decision.claim_response_id,
                        preauth_ref=decision.preauth_ref, payer=payer)


def process_notification(ledger: Ledger, notification_id: int, body: bytes,
                         subscription: SubscriptionRecord | None) -> list[DecisionUpdate]:
    """Parse one stored notification and apply it; returns the decisions that changed a request."""
    try:
        notification = parse_notification(body)
    except FhirPaError as exc:
        ledger.notifications.mark(notification_id, outcome="invalid", detail=exc.one_line())
        log.warning("notification %d is unreadable: %s", notification_id, exc.one_line())
        return []
    source = subscription.id if subscription is not None else notification.subscription
    payer = subscription.payer if subscription is not None else None
    kind = notification.type.value
    if subscription is not None:
        last = max((e.event_number for e in notification.events if e.event_number is not None), default=None)
        ledger.subscriptions.heard(subscription.id, at=now_utc(), event_number=last)
    if notification.type is not NotificationType.EVENT:
        ledger.notifications.mark(notification_id, outcome=kind, type=kind, subscription=source)
        return []
    changed: list[DecisionUpdate] = []
    outcomes: list[str] = []
    last_event: NotificationEvent | None = None
    record_id: str | None = None
    for event in notification.events:
        last_event = event
        if event.event_number is not None and ledger.notifications.seen(source, event.event_number, event.focus,
                                                                        before=notification_id):
            outcomes.append(f"{event.event_number}:duplicate")
            continue
        record = _match(ledger, event, payer)
        if record is None:
            outcomes.append(f"{event.event_number}:unmatched")
            continue
        record_id = record.id
        if event.decision is None or event.response is None:
            ledger.schedule_poll(record.id, now_utc(), polled=False)  # id-only: ask the payer now
            outcomes.append(f"{event.event_number}:id-only")
            continue
        body_out = json.dumps(event.response, separators=(",", ":")).encode("utf-8")
        verdict = ledger.advance(record.id, event.decision.status.value, channel="notification", body=body_out,
                                 detail=f"notification event {event.event_number}",
                                 preauth_ref=event.decision.preauth_ref,
                                 claim_response_id=event.decision.claim_response_id,
                                 event_number=event.event_number, event_source=source)
        outcomes.append(f"{event.event_number}:{verdict}")
        if verdict == APPLIED:
            changed.append(DecisionUpdate(ledger.get(record.id), event.decision, "notification"))
    verdicts = {text.split(":", 1)[1] for text in outcomes}
    overall = next((v for v in ("applied", "unchanged", "stale", "id-only", "duplicate", "unmatched") if v in verdicts),
                   "empty")
    ledger.notifications.mark(
        notification_id, outcome=overall, type=kind, subscription=source,
        event_number=last_event.event_number if last_event else None,
        focus=last_event.focus if last_event else None, request_id=record_id, detail=" ".join(outcomes) or None)
    return changed


class NotificationReceiver:
    """ASGI app receiving PAS notifications into ``ledger``; ``on_update`` is called for each changed request.

    Mount it (``app.mount("/pas", receiver)``) or serve it; the route is ``POST {path}``. Given ``jwks`` (our
    public keys, e.g. ``CdsClientIdentity.jwks()``), it also publishes them at ``GET /jwks.json``, the ``jku`` a
    CRD service fetches to verify our client JWTs.
    """

    def __init__(self, ledger: Ledger, *, on_update: OnUpdate | None = None, path: str = "/notify",
                 jwks: Mapping[str, Any] | None = None) -> None:
        self.ledger = ledger
        self.on_update = on_update
        self.path = path
        routes = [Route(path, self._receive, methods=["POST"])]
        if jwks is not None:
            published = _public_jwks(jwks)
            routes.append(Route("/jwks.json", lambda _: JSONResponse(published), methods=["GET"]))
        self.app = Starlette(routes=routes)
        self._lock = threading.Lock()

    async def __call__(self, scope: object, receive: object, send: object) -> None:
        await self.app(scope, receive, send)  # type: ignore[arg-type]

    def _authenticate(self, request: Request) -> SubscriptionRecord | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.ledger.subscriptions.authenticate(token.strip())

    async def _receive(self, request: Request) -> Response:
        subscription = await run_in_threadpool(self._authenticate, request)
        if subscription is None:
            log.warning("refused a notification without a valid bearer token from %s",
                        request.client.host if request.client else "?")
            return _outcome(401, "security", "this endpoint needs the token our Subscription gave the payer")
        body = await request.body()
        if len(body) > MAX_BODY:
            return _outcome(413, "too-costly", f"notifications larger than {MAX_BODY} bytes are refused")
        await run_in_threadpool(self._store, body, subscription.id)
        return Response(status_code=200, background=BackgroundTask(self._process))

    def _store(self, body: bytes, subscription_id: str) -> int:
        return self.ledger.notifications.store(body, received_at=now_utc(), subscription=subscription_id)

    async def _process(self) -> None:
        changed = await run_in_threadpool(self._drain)
        await self._notify(changed)

    def _drain(self) -> list[DecisionUpdate]:
        """Process every stored, unprocessed notification in arrival order, one at a time.

        Serialising keeps duplicate detection exact (a copy arriving while the original is still being processed
        is seen as a duplicate, not as stale news) and applies events in the order the payer sent them.
        """
        changed: list[DecisionUpdate] = []
        with self._lock:
            for stored in self.ledger.notifications.unprocessed():
                subscription = self.ledger.subscriptions.by_id(stored.subscription) if stored.subscription else None
                changed.extend(process_notification(self.ledger, stored.id, stored.body, subscription))
        return changed

    async def _notify(self, changed: list[DecisionUpdate]) -> None:
        if self.on_update is None:
            return
        for update in changed:
            try:
                result = self.on_update(update)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a user callback must not stop notifications being processed
                log.exception("on_update callback failed for request %s", update.record.id)

    async def recover(self) -> int:
        """Process notifications stored but never processed (after a crash); returns how many."""
        pending = len(await run_in_threadpool(self.ledger.notifications.unprocessed))
        await self._process()
        return pending

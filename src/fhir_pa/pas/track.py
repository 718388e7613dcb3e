"""Wait for a pended request's final decision through whichever channel the payer offers.

Everything the tracker knows lives in the ledger (state, newest answer, when to poll next, our Subscription),
so a tracker killed mid-wait and started again continues where it stopped: it neither loses the request nor
restarts the backoff from zero. With a Subscription it waits for the receiver (which may run in another process
on the same ledger) to record notifications, checks now and then that the Subscription is still active
(re-requesting it when the payer set it to ``error`` or ``off``), and polls anyway when the payer has been silent
for ``fallback_after`` seconds. Without one it polls with capped exponential backoff and jitter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fhir_pa.config import PayerConfig
from fhir_pa.errors import FhirPaError, LedgerError, PayerRejected
from fhir_pa.fhir.flow import Flow, Wait
from fhir_pa.fhir.ratelimit import RateLimiter, shared_limiter
from fhir_pa.ledger.store import RESENDABLE_STATES, Ledger, LedgerRecord, now_utc
from fhir_pa.pas.decision import PasDecision, parse_response
from fhir_pa.pas.poll import first_poll_at, next_poll_delay, poll_once
from fhir_pa.pas.receiver import DecisionUpdate
from fhir_pa.pas.subscribe import ensure_subscription

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackResult:
    """Where a request stands when tracking stopped: final, or still pended when the timeout came first."""

    record_id: str
    order_id: str
    state: str
    final: bool
    decision: PasDecision | None
    #: How the newest answer arrived: submit, notification, poll-read, poll-search, inquire.
    channel: str | None
    #: The request's place on the CMS clock ("decided in time", "2 days 3 h left", ...).
    clock: str
    polls: int


def result_of(record: LedgerRecord) -> TrackResult:
    decision = parse_response(record.decision_body, source="stored answer") if record.decision_body else None
    return TrackResult(record_id=record.id, order_id=record.order_id, state=record.state, final=record.final,
                       decision=decision, channel=record.decision_channel, clock=record.time_left(),
                       polls=record.polls)


def _due(at: datetime | None, now: datetime) -> bool:
    return at is None or at <= now


def track_flow(payer: PayerConfig, ledger: Ledger, key: str, *, timeout: float | None = None,
               on_update: Callable[[DecisionUpdate], object] | None = None,
               limiter: RateLimiter = shared_limiter, monotonic: Callable[[], float] = time.monotonic,
               ) -> Flow[TrackResult]:
    """The tracking protocol for the request ``key`` (record id or order id); see the module docstring."""
    settings = payer.poll
    record = ledger.lookup(key)
    if record.state in RESENDABLE_STATES or record.submitted_at is None:
        raise LedgerError(f"request {record.id} has not reached the payer yet (state {record.state!r}); "
                          "submit it before tracking")
    stop_at = None if timeout is None else monotonic() + timeout
    subscribed = False
    next_subscription_check = monotonic()
    seen_state = record.state
    while True:
        record = ledger.latest_in_case(record.case_id)
        if record.state != seen_state and record.decision_body is not None and on_update is not None:
            on_update(DecisionUpdate(record, parse_response(record.decision_body, source="stored answer"),
                                     record.decision_channel or "?"))
        seen_state = record.state
        if record.final or (stop_at is not None and monotonic() >= stop_at):
            return result_of(record)
        now = now_utc()
        if payer.subscription is not None and monotonic() >= next_subscription_check:
            try:
                check = yield from ensure_subscription(payer, ledger)
            except FhirPaError as exc:
                log.warning("subscription at %s unusable, polling instead: %s", payer.base, exc.one_line())
                subscribed = False
            else:
                subscribed = check.record.status in ("active", "requested", "requesting")
                if check.renewed and record.last_heard_at is not None:
                    ledger.schedule_poll(record.id, now, polled=False)  # events may have been missed
            next_subscription_check = monotonic() + settings.subscription_check
        if subscribed:
            # Notifications are the channel; poll only when the payer went quiet, or when asked to at once
            # (an id-only notification, a re-requested Subscription).
            heard = record.last_heard_at or record.submitted_at or now
            silent = now - heard >= timedelta(seconds=settings.fallback_after)
            poll_due = (record.next_poll_at is not None and record.next_poll_at <= now) or (
                record.next_poll_at is None and silent)
        else:
            poll_due = (record.next_poll_at or first_poll_at(settings, record)) <= now
        if poll_due:
            try:
                outcome = yield from poll_once(payer, ledger, record, limiter=limiter)
            except PayerRejected as exc:
                log.warning("poll of %s refused: %s", record.id, exc.one_line())
                outcome = None
            if subscribed and outcome is not None and outcome.decision is not None:
                ledger.schedule_poll(record.id, None)  # heard from the payer: back to waiting for notifications
            else:
                delay = next_poll_delay(settings, record.polls, outcome.retry_after if outcome else None)
                ledger.schedule_poll(record.id, now_utc() + timedelta(seconds=delay))
            continue
        wait = settings.ledger_check
        if stop_at is not None:
            wait = min(wait, max(0.0, stop_at - monotonic()))
        yield Wait(wait)

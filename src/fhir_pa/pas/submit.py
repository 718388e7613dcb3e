"""Send a PAS request with ``Claim/$submit`` and read the decision, sync or async.

The exact bytes are recorded in the ledger before the first send. A 4xx is final and never retried; 5xx,
429 and transport failures are retried with backoff, always resending the *same* bytes (same Bundle and
Claim identifiers), so a payer that already received one copy sees a duplicate, never a second request.
Submitting an order the ledger already holds never builds a new request: a decided one returns the stored
decision, an unfinished one resends its stored bytes. Updates and cancels follow the same rules.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import httpx

from fhir_pa.config import PayerConfig
from fhir_pa.fhir.flow import run_async, run_sync
from fhir_pa.ledger.store import Ledger, LedgerRecord, now_utc
from fhir_pa.pas.decision import PasDecision
from fhir_pa.pas.order import PriorAuthOrder
from fhir_pa.pas.poll import PollOutcome, poll_once
from fhir_pa.pas.receiver import DecisionUpdate
from fhir_pa.pas.submit_core import HEADERS, SubmitCore, encode, make_auth
from fhir_pa.pas.subscribe import SubscriptionCheck, ensure_subscription
from fhir_pa.pas.track import TrackResult, track_flow

__all__ = ["AsyncPasClient", "PasClient", "SubmitResult", "encode", "make_auth"]


@dataclass(frozen=True)
class SubmitResult:
    """What came of one submission: the ledger record and the payer's decision."""

    record_id: str
    order_id: str
    decision: PasDecision
    #: False when the decision came from the ledger and nothing was sent this time.
    sent: bool



class PasClient:
    """Synchronous PAS client for one payer. Use as a context manager, or call :meth:`close`."""

    def __init__(self, payer: PayerConfig, *, ledger: Ledger | None = None, http: httpx.Client | None = None,
                 auth: httpx.Auth | None = None, check: bool = True) -> None:
        self.payer = payer
        self.ledger = ledger or Ledger()
        self._core = SubmitCore(payer, self.ledger)
        self._owns_http = http is None
        self.http = http or httpx.Client(timeout=payer.timeout)
        self.auth = auth or make_auth(payer)
        self.check = check

    def submit(self, order: PriorAuthOrder) -> SubmitResult:
        """Submit ``order`` (once: see the module docstring) and return the payer's decision."""
        return self._submit_record(self._core.prepare(order, check=self.check))

    def _send(self, record: LedgerRecord) -> PasDecision:
        core, policy = self._core, self.payer.retry
        last: httpx.Response | None = None
        failure: Exception | None = None
        self.ledger.set_state(record.id, "sending")
        for attempt in range(1, policy.attempts + 1):
            started = now_utc()
            try:
                response = self.http.post(self.payer.submit_url, content=record.request_body, headers=HEADERS,
                                          auth=self.auth)
            except httpx.TransportError as exc:
                core.on_transport_error(record, started, exc)
                failure, last = exc, None
            else:
                decision = core.on_response(record, started, response)
                if decision is not None:
                    return decision
                last = response
            if attempt < policy.attempts:
                time.sleep(policy.delay(attempt, last))
        raise core.give_up(record, last, failure)

    def update(self, order: PriorAuthOrder) -> SubmitResult:
        """Send a Claim Update bringing the order's authorization to ``order`` (lines matched by sequence)."""
        return self._submit_record(self._core.prepare_update(order, check=self.check))

    def cancel(self, key: str) -> SubmitResult:
        """Cancel the whole authorization ``key`` (record or order id) with a cancel-all Claim Update."""
        return self._submit_record(self._core.prepare_cancel(key, check=self.check))

    def inquire(self, key: str) -> PollOutcome:
        """Ask the payer with ``$inquire`` where request ``key`` stands (for people; trackers don't need it)."""
        record = self.ledger.lookup(key)
        return run_sync(poll_once(self.payer, self.ledger, record, channel="inquire"), self.http, self.auth)

    def _submit_record(self, record: LedgerRecord) -> SubmitResult:
        stored = self._core.stored_decision(record)
        if stored is not None:
            return SubmitResult(record.id, record.order_id, stored, sent=False)
        return SubmitResult(record.id, record.order_id, self._send(record), sent=True)

    def track(self, key: str, *, timeout: float | None = None,
              on_update: Callable[[DecisionUpdate], object] | None = None) -> TrackResult:
        """Wait until the request ``key`` (record or order id) is final, or ``timeout`` seconds pass.

        Resumes from the ledger, so calling it again after a restart continues the same wait
        (:mod:`fhir_pa.pas.track`).
        """
        return run_sync(track_flow(self.payer, self.ledger, key, timeout=timeout, on_update=on_update),
                        self.http, self.auth)

    def subscribe(self) -> SubscriptionCheck:
        """Create our PAS Subscription at this payer, or check it and re-request it if it failed."""
        return run_sync(ensure_subscription(self.payer, self.ledger), self.http, self.auth)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncPasClient:
    """Asynchronous PAS client for one payer; the same behaviour as :class:`PasClient`."""

    def __init__(self, payer: PayerConfig, *, ledger: Ledger | None = None,
                 http: httpx.AsyncClient | None = None, auth: httpx.Auth | None = None, check: bool = True) -> None:
        self.payer = payer
        self.ledger = ledger or Ledger()
        self._core = SubmitCore(payer, self.ledger)
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(timeout=payer.timeout)
        self.auth = auth or make_auth(payer)
        self.check = check

    async def submit(self, order: PriorAuthOrder) -> SubmitResult:
        return await self._submit_record(self._core.prepare(order, check=self.check))

    async def _send(self, record: LedgerRecord) -> PasDecision:
        core, policy = self._core, self.payer.retry
        last: httpx.Response | None = None
        failure: Exception | None = None
        self.ledger.set_state(record.id, "sending")
        for attempt in range(1, policy.attempts + 1):
            started = now_utc()
            try:
                response = await self.http.post(self.payer.submit_url, content=record.request_body,
                                                headers=HEADERS, auth=self.auth)
            except httpx.TransportError as exc:
                core.on_transport_error(record, started, exc)
                failure, last = exc, None
            else:
                decision = core.on_response(record, started, response)
                if decision is not None:
                    return decision
                last = response
            if attempt < policy.attempts:
                await asyncio.sleep(policy.delay(attempt, last))
        raise core.give_up(record, last, failure)

    async def update(self, order: PriorAuthOrder) -> SubmitResult:
        return await self._submit_record(self._core.prepare_update(order, check=self.check))

    async def cancel(self, key: str) -> SubmitResult:
        return await self._submit_record(self._core.prepare_cancel(key, check=self.check))

    async def inquire(self, key: str) -> PollOutcome:
        record = self.ledger.lookup(key)
        return await run_async(poll_once(self.payer, self.ledger, record, channel="inquire"), self.http, self.auth)

    async def _submit_record(self, record: LedgerRecord) -> SubmitResult:
        stored = self._core.stored_decision(record)
        if stored is not None:
            return SubmitResult(record.id, record.order_id, stored, sent=False)
        return SubmitResult(record.id, record.order_id, await self._send(record), sent=True)

    async def track(self, key: str, *, timeout: float | None = None,  # noqa: ASYNC109 - same API as the sync client
                    on_update: Callable[[DecisionUpdate], object] | None = None) -> TrackResult:
        """Async :meth:`PasClient.track`."""
        return await run_async(track_flow(self.payer, self.ledger, key, timeout=timeout, on_update=on_update),
                               self.http, self.auth)

    async def subscribe(self) -> SubscriptionCheck:
        return await run_async(ensure_subscription(self.payer, self.ledger), self.http, self.auth)

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

"""Run many orders through the workflow: bounded concurrency, a per-payer rate, leases, resumable.

The run's input is recorded in the ledger first (:mod:`fhir_pa.ledger.runs`); then the runner claims orders a
few at a time, runs each through :class:`~fhir_pa.workflow.AsyncWorkflow` and settles it. Nothing here keeps
state that matters only in memory: a worker killed at any point leaves claimed orders (taken back when it
restarts under the same name, or by another worker when the lease runs out) and PAS requests recorded before
they were sent (resent with the same identifiers). Pended requests are tracked outside the concurrency bound,
so waiting for a payer never starves submission.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from fhir_pa.batch.inputs import InputLine, parse_line
from fhir_pa.fhir.ratelimit import RateLimiter, shared_limiter
from fhir_pa.ledger.runs import ClaimedItem
from fhir_pa.ledger.store import Ledger
from fhir_pa.workflow.result import WorkflowResult
from fhir_pa.workflow.run import AsyncWorkflow

log = logging.getLogger(__name__)

#: Outcomes after which an order is settled for good (``pended`` waits for a later run; errors may be retried).
SETTLED = frozenset({"approved", "denied", "partial", "modified", "cancelled", "no-auth-needed",
                     "needs-documentation"})


def default_worker() -> str:
    """This machine's name: a worker restarted here takes its own claimed orders back at once. Give each worker
    on one machine its own ``--worker`` name."""
    return socket.gethostname() or "worker"


@dataclass(frozen=True)
class BatchSettings:
    run_id: str
    worker: str = field(default_factory=default_worker)
    #: Orders in CRD/DTR/PAS at once (tracking a pended request does not count).
    concurrency: int = 8
    #: Orders started per second against this payer (0: no limit).
    rate: float = 0.0
    #: Seconds a claim holds without renewal; a live worker renews every third of it.
    lease: float = 120.0
    #: Claims of one order (transient failures included) before it is settled as an error.
    max_tries: int = 3
    #: Seconds before an order that failed transiently may be claimed again.
    retry_after: float = 30.0
    #: Follow pended requests to their final decision (within the workflow's ``track_timeout``).
    track: bool = True


@dataclass(frozen=True)
class Progress:
    """One order settled (or set aside) by this worker."""

    order_id: str
    outcome: str
    status: str
    #: How many orders of the run are not done yet, across workers (read from the ledger every few settles).
    open: int | None = None


@dataclass
class RunTotals:
    """What this worker did in this invocation."""

    claimed: int = 0
    settled: int = 0
    retried: int = 0
    waiting: int = 0
    lost_leases: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class BatchRunner:
    def __init__(self, workflow: AsyncWorkflow, ledger: Ledger, settings: BatchSettings, *,
                 on_progress: Callable[[Progress], object] | None = None,
                 limiter: RateLimiter = shared_limiter) -> None:
        self.workflow = workflow
        self.ledger = ledger
        self.settings = settings
        self.on_progress = on_progress
        self._limiter = limiter
        self._payer = workflow.pas.payer.base
        self.totals = RunTotals()
        #: Orders claimed and not yet settled or handed to tracking: what the concurrency bound counts.
        self._submitting = 0

    def start(self, lines: Sequence[InputLine], source: str) -> bool:
        """Record the run's input (a no-op when resuming or joining); True when this call created the run."""
        info = self.ledger.runs.start(self.settings.run_id, payer=self._payer, source=source,
                                      items=[(line.order_id, line.body) for line in lines])
        return info.created

    async def run(self) -> RunTotals:
        """Work until no order of the run is left to claim; returns this worker's totals."""
        settings, runs = self.settings, self.ledger.runs
        busy = asyncio.Semaphore(settings.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        # Orders left pended are tracked again by a later run, not by this one in a loop.
        started = datetime.now(UTC)
        # A previous process under our name is gone (or we would not be starting): its claims are ours again.
        runs.release(settings.run_id, settings.worker)
        renewing = asyncio.create_task(self._renew())
        try:
            while True:
                free = settings.concurrency - self._submitting
                claimed: list[ClaimedItem] = runs.claim(
                    settings.run_id, settings.worker, limit=free, lease=settings.lease,
                    waiting_before=started) if free > 0 else []
                self.totals.claimed += len(claimed)
                self._submitting += len(claimed)
                for item in claimed:
                    task = asyncio.create_task(self._one(item, busy))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if not claimed and not tasks:
                    wait = runs.next_retry_in(settings.run_id)
                    if wait is None:
                        return self.totals
                    await asyncio.sleep(min(max(wait, 0.05), settings.retry_after))  # a retry comes due
                    continue
                if not claimed or free - len(claimed) <= 0:
                    done, _ = await asyncio.wait(tasks, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
                    for finished in done:
                        finished.result()  # a bug in a task must not pass silently
        finally:
            renewing.cancel()
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(renewing, *tasks, return_exceptions=True)

    async def _renew(self) -> None:
        interval = max(1.0, self.settings.lease / 3)
        while True:
            await asyncio.sleep(interval)
            self.ledger.runs.renew(self.settings.run_id, self.settings.worker, lease=self.settings.lease)

    async def _one(self, item: ClaimedItem, busy: asyncio.Semaphore) -> None:
        submitting = True
        try:
            result = await self._submit(item, busy)
            if result is None:
                return
            if result.outcome == "pended" and self.settings.track and result.record is not None:
                self._submitting -= 1
                submitting = False
                result = await self.workflow.follow(result)
            self._finish(item, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not stop the other orders of the batch; it is settled as one
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error("order %s failed on an unexpected %s at %s:%s", item.order_id, type(exc).__name__,
                      where.filename.rsplit("/", 1)[-1], where.lineno)  # never the message: it may hold PHI
            if isinstance(exc, httpx.TransportError) and item.tries < self.settings.max_tries:
                # an untyped network failure is still a network failure: try the order again later
                self._settle(item, "retry", "error", error_code="transport", error=type(exc).__name__)
            else:
                self._settle(item, "done", "error", error_code="internal",
                             error=f"unexpected {type(exc).__name__} (a fhir-pa bug; the log says where)")
        finally:
            if submitting:
                self._submitting -= 1

    async def _submit(self, item: ClaimedItem, busy: asyncio.Semaphore) -> WorkflowResult | None:
        settings = self.settings
        try:
            data = json.loads(item.body)
        except ValueError:
            self._settle(item, "done", "error", error_code="input",
                         error=f"order {item.order_id} of the input is not JSON")
            return None
        line = parse_line(data, item.position + 1, "batch")
        if line.order is None:
            assert line.error is not None
            self._settle(item, "done", "error", error_code=line.error.code, error=line.error.one_line())
            return None
        async with busy:
            if settings.rate > 0:
                await asyncio.sleep(self._limiter.reserve(f"batch:{self._payer}", settings.rate))
            return await self.workflow.run(line.order, track=False)

    def _finish(self, item: ClaimedItem, result: WorkflowResult) -> None:
        settings = self.settings
        record_id = result.record.id if result.record else None
        if result.outcome in SETTLED or (result.outcome == "error" and not result.transient):
            status = "done"
        elif result.outcome == "pended" and result.error_code is None:
            status = "waiting"
        elif item.tries < settings.max_tries:
            status = "retry"
        else:
            status = "done"
        self._settle(item, status, result.outcome, record_id=record_id, error_code=result.error_code,
                     error=result.error)

    def _settle(self, item: ClaimedItem, status: str, outcome: str, *, record_id: str | None = None,
                error_code: str | None = None, error: str | None = None) -> None:
        held = self.ledger.runs.finish(self.settings.run_id, item.order_id, self.settings.worker, status=status,
                                       outcome=outcome, record_id=record_id, error_code=error_code, error=error,
                                       retry_after=self.settings.retry_after if status == "retry" else None)
        totals = self.totals
        if not held:
            totals.lost_leases += 1
            log.warning("order %s was taken over by another worker before it was settled here", item.order_id)
            return
        if status == "done":
            totals.settled += 1
            totals.outcomes[outcome] = totals.outcomes.get(outcome, 0) + 1
        elif status == "retry":
            totals.retried += 1
        else:
            totals.waiting += 1
        if self.on_progress is not None:
            self.on_progress(Progress(item.order_id, outcome, status))



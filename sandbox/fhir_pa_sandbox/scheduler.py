"""One background thread that runs the sandbox's later work: pended decisions when due, handshakes, notifications.

A single thread keeps the order of deliveries the order they were queued (the reorder fault relies on it) and
makes shutdown simple: :meth:`Scheduler.stop` drops whatever is still queued and joins the thread, so nothing
scheduled outlives the server. Jobs must not raise; one that does is logged (by type only) and skipped.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], None]


class Scheduler:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._queue: list[tuple[float, int, Job]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def at(self, delay: float, job: Job) -> None:
        """Run ``job`` once ``delay`` seconds have passed (jobs due together run in the order queued)."""
        with self._wake:
            if self._stopping:
                return
            heapq.heappush(self._queue, (self._clock() + max(delay, 0.0), next(self._order), job))
            self._wake.notify()

    def soon(self, job: Job) -> None:
        self.at(0.0, job)

    def pending(self) -> int:
        with self._wake:
            return len(self._queue)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self._wake:
            if self.running:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="fhir-pa-sandbox-scheduler", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Drop queued jobs, let the running one finish, and join the thread."""
        with self._wake:
            self._stopping = True
            self._queue.clear()
            self._wake.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _next(self) -> Job | None:
        with self._wake:
            while not self._stopping:
                if self._queue and self._queue[0][0] <= self._clock():
                    return heapq.heappop(self._queue)[2]
                wait = self._queue[0][0] - self._clock() if self._queue else None
                self._wake.wait(wait)
            return None

    def _run(self) -> None:
        while (job := self._next()) is not None:
            try:
                job()
            except Exception as exc:  # a broken job must not stop the payer's later work
                log.warning("sandbox background job failed: %s", type(exc).__name__)

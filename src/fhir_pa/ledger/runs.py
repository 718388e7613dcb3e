"""Batch runs in the ledger: the input recorded once, and each order claimed by exactly one worker at a time.

A claim is one ``UPDATE ... WHERE key IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING`` statement: on PostgreSQL
concurrent workers skip each other's rows, on SQLite the single statement is atomic. A claim is a lease; a live
worker renews its leases, so only the orders of a worker that died (or stopped renewing) are taken over once the
lease runs out. A worker restarted under the same name releases its old claims first, taking them back at once.
Reached as ``ledger.runs``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from fhir_pa.errors import InputError
from fhir_pa.ledger.run_schema import batch_items, batch_runs

if TYPE_CHECKING:
    from fhir_pa.ledger.store import Ledger

_CHUNK = 500


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class RunInfo:
    id: str
    payer: str
    source: str
    source_sha256: str
    orders: int
    created_at: datetime
    #: False when this call found the run already recorded (a resume, or a second worker joining).
    created: bool


@dataclass(frozen=True)
class ClaimedItem:
    order_id: str
    position: int
    body: bytes
    #: How many times this order has been claimed, this claim included.
    tries: int
    #: The status before this claim: ``pending`` (new), ``retry``, ``waiting`` (tracking again) or ``claimed``
    #: (taken over from a worker whose lease ran out, or our own after a restart).
    previous: str


@dataclass(frozen=True)
class ItemState:
    order_id: str
    position: int
    status: str
    worker: str | None
    tries: int
    outcome: str | None
    record_id: str | None
    error_code: str | None
    error: str | None
    finished_at: datetime | None


def input_digest(lines: Sequence[bytes]) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(hashlib.sha256(line).digest())
    return digest.hexdigest()


class BatchBook:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def _insert(self) -> Any:
        dialect = self._ledger.engine.dialect.name
        module = postgresql if dialect == "postgresql" else sqlite
        return module.insert

    def start(self, run_id: str, *, payer: str, source: str, items: Sequence[tuple[str, bytes]]) -> RunInfo:
        """Record run ``run_id`` and its orders, unless already recorded; then the stored input must match."""
        digest = input_digest([body for _, body in items])
        now = datetime.now(UTC)
        dialect_insert = self._insert()
        with self._ledger._tx() as conn:
            created = conn.execute(dialect_insert(batch_runs).values(
                id=run_id, payer=payer, source=source, source_sha256=digest, orders=len(items), created_at=now,
            ).on_conflict_do_nothing().returning(batch_runs.c.id)).first() is not None
            if created:
                for start in range(0, len(items), _CHUNK):
                    conn.execute(insert(batch_items), [
                        {"run_id": run_id, "order_id": order_id, "position": start + n, "body": body,
                         "status": "pending", "tries": 0}
                        for n, (order_id, body) in enumerate(items[start:start + _CHUNK])])
            row = conn.execute(select(batch_runs).where(batch_runs.c.id == run_id)).one()
        if row.source_sha256 != digest or row.payer != payer:
            raise InputError(f"batch run {run_id!r} was started with other orders or another payer; "
                             "give this input another --run name", path="run")
        return RunInfo(id=row.id, payer=row.payer, source=row.source, source_sha256=row.source_sha256,
                       orders=row.orders, created_at=_utc(row.created_at) or now, created=created)

    def claim(self, run_id: str, worker: str, *, limit: int, lease: float,
              waiting_before: datetime | None = None) -> list[ClaimedItem]:
        """Claim up to ``limit`` open orders for ``worker``, leased for ``lease`` seconds: first those of a worker whose
        lease ran out, then retries that are due, then new ones, then pended ones, each kind in input order. Never an
        unexpired claim of another worker (a restarted worker first :meth:`release` s what its name still holds).

        ``waiting_before``: take a pended (``waiting``) order only if it was last claimed before then; a worker
        passes its own start, so it tracks what earlier runs left pended but does not loop on its own.
        """
        now = datetime.now(UTC)
        items = batch_items.c
        waiting_ok = items.status == "waiting"
        if waiting_before is not None:
            waiting_ok = and_(waiting_ok, or_(items.claimed_at.is_(None), items.claimed_at < waiting_before))
        # Each kind of claimable order is one status, so each pick walks the (run, status, position) index and
        # stops at the limit: a claim costs the same at the end of a 10,000-order run as at its start.
        picks = [and_(items.status == "claimed", items.lease_until < now),  # a dead worker's, first
                 and_(items.status == "retry", or_(items.not_before.is_(None), items.not_before <= now)),
                 items.status == "pending",
                 waiting_ok]
        claimable = or_(*picks)
        with self._ledger._tx() as conn:
            before: dict[str, str] = {}
            for pick in picks:
                if len(before) >= limit:
                    break
                query = (select(items.order_id, items.status).where(items.run_id == run_id, pick)
                         .order_by(items.position).limit(limit - len(before)).with_for_update(skip_locked=True))
                before.update((r.order_id, r.status) for r in conn.execute(query))
            if not before:
                return []
            rows = conn.execute(
                update(batch_items)
                .where(items.run_id == run_id, items.order_id.in_(list(before)), claimable)
                .values(status="claimed", worker=worker, claimed_at=now, lease_until=now + timedelta(seconds=lease),
                        tries=items.tries + 1)
                .returning(items.order_id, items.position, items.body, items.tries)).all()
        claimed = [ClaimedItem(order_id=r.order_id, position=r.position, body=bytes(r.body), tries=r.tries,
                               previous=before[r.order_id]) for r in rows]
        return sorted(claimed, key=lambda item: item.position)

    def renew(self, run_id: str, worker: str, *, lease: float) -> int:
        """Extend the leases ``worker`` holds; returns how many."""
        until = datetime.now(UTC) + timedelta(seconds=lease)
        with self._ledger._tx() as conn:
            return int(conn.execute(update(batch_items).where(
                batch_items.c.run_id == run_id, batch_items.c.worker == worker, batch_items.c.status == "claimed",
            ).values(lease_until=until)).rowcount)

    def finish(self, run_id: str, order_id: str, worker: str, *, status: str, outcome: str | None,
               record_id: str | None = None, error_code: str | None = None, error: str | None = None,
               retry_after: float | None = None) -> bool:
        """Settle a claimed order; False when ``worker`` no longer holds it (its lease was taken over)."""
        if status not in ("done", "retry", "waiting", "pending"):
            raise ValueError(f"unknown batch item status {status!r}")
        now = datetime.now(UTC)
        with self._ledger._tx() as conn:
            return conn.execute(update(batch_items).where(
                batch_items.c.run_id == run_id, batch_items.c.order_id == order_id,
                batch_items.c.worker == worker, batch_items.c.status == "claimed",
            ).values(status=status, outcome=outcome, record_id=record_id, error_code=error_code, error=error,
                     lease_until=None, finished_at=now if status == "done" else None,
                     not_before=now + timedelta(seconds=retry_after) if retry_after else None)).rowcount == 1

    def release(self, run_id: str, worker: str) -> int:
        """Give back every order ``worker`` holds (a clean stop), for any worker to take at once."""
        with self._ledger._tx() as conn:
            return int(conn.execute(update(batch_items).where(
                batch_items.c.run_id == run_id, batch_items.c.worker == worker, batch_items.c.status == "claimed",
            ).values(status="pending", lease_until=None)).rowcount)

    def next_retry_in(self, run_id: str) -> float | None:
        """Seconds until the earliest order waiting to be retried comes due (None: no order is waiting)."""
        with self._ledger.engine.connect() as conn:
            due = conn.execute(select(func.min(batch_items.c.not_before)).where(
                batch_items.c.run_id == run_id, batch_items.c.status == "retry")).scalar()
        when = _utc(due)
        return None if when is None else (when - datetime.now(UTC)).total_seconds()

    def counts(self, run_id: str) -> dict[str, int]:
        with self._ledger.engine.connect() as conn:
            rows = conn.execute(select(batch_items.c.status, func.count()).where(batch_items.c.run_id == run_id)
                                .group_by(batch_items.c.status)).all()
        return {status: int(n) for status, n in rows}

    def open_count(self, run_id: str) -> int:
        """Orders not done yet (pending, claimed, retry, waiting)."""
        return sum(n for status, n in self.counts(run_id).items() if status != "done")

    def items(self, run_id: str) -> list[ItemState]:
        with self._ledger.engine.connect() as conn:
            rows = conn.execute(select(batch_items).where(batch_items.c.run_id == run_id)
                                .order_by(batch_items.c.position)).all()
        return [ItemState(order_id=r.order_id, position=r.position, status=r.status, worker=r.worker, tries=r.tries,
                          outcome=r.outcome, record_id=r.record_id, error_code=r.error_code, error=r.error,
                          finished_at=_utc(r.finished_at)) for r in rows]

    def body(self, run_id: str, order_id: str) -> bytes:
        with self._ledger.engine.connect() as conn:
            value = conn.execute(select(batch_items.c.body).where(
                batch_items.c.run_id == run_id, batch_items.c.order_id == order_id)).scalar_one()
        return bytes(value)

"""Each order's workflow path as the ledger remembers it (CRD asked, form filled or held, submitted, tracked).
Reached as ``ledger.steps``; a held form's prepopulated response is kept in ``body`` so a person can finish it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import insert, select

from fhir_pa.ledger.run_schema import workflow_steps

if TYPE_CHECKING:
    from fhir_pa.ledger.store import Ledger


@dataclass(frozen=True)
class Step:
    order_id: str
    payer: str
    step: str
    outcome: str
    detail: str | None
    body: bytes | None
    at: datetime
    elapsed_ms: int | None
    worker: str | None


class StepLog:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def record(self, *, order_id: str, payer: str, step: str, outcome: str, detail: str | None = None,
               body: bytes | None = None, elapsed_ms: int | None = None, worker: str | None = None) -> None:
        with self._ledger._tx() as conn:
            conn.execute(insert(workflow_steps).values(
                order_id=order_id, payer=payer, step=step, outcome=outcome, detail=detail, body=body,
                at=datetime.now(UTC), elapsed_ms=elapsed_ms, worker=worker))

    def for_order(self, *, payer: str, order_id: str) -> list[Step]:
        query = (select(workflow_steps).where(workflow_steps.c.payer == payer, workflow_steps.c.order_id == order_id)
                 .order_by(workflow_steps.c.id))
        with self._ledger.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [Step(order_id=r.order_id, payer=r.payer, step=r.step, outcome=r.outcome, detail=r.detail,
                     body=bytes(r.body) if r.body is not None else None,
                     at=r.at.replace(tzinfo=UTC) if r.at.tzinfo is None else r.at, elapsed_ms=r.elapsed_ms,
                     worker=r.worker) for r in rows]

    def latest(self, *, payer: str, order_id: str, step: str) -> Step | None:
        found = [s for s in self.for_order(payer=payer, order_id=order_id) if s.step == step]
        return found[-1] if found else None

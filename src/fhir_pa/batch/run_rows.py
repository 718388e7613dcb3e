"""A whole run's report rows, read from the ledger alone (every worker's orders, after any number of restarts)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from fhir_pa.batch.rows import BatchRow, Outcome
from fhir_pa.errors import FhirPaError
from fhir_pa.ledger.clock import as_utc
from fhir_pa.ledger.run_schema import workflow_steps
from fhir_pa.ledger.runs import ItemState
from fhir_pa.ledger.schema import requests
from fhir_pa.ledger.store import Ledger
from fhir_pa.pas.decision import parse_response
from fhir_pa.workflow.result import denial_reasons, outcome_of_state

_OUTCOMES = frozenset({"approved", "denied", "partial", "modified", "pended", "cancelled", "no-auth-needed",
                       "needs-documentation", "error"})


@dataclass(frozen=True)
class _Request:
    """What a report row needs of a request: no bodies (a 10,000-order run's bodies are hundreds of MB)."""

    id: str
    state: str
    urgency: str
    preauth_ref: str | None
    submitted_at: datetime | None
    decided_at: datetime | None
    deadline_at: datetime | None
    decision_channel: str | None
    attempts: int


_COLUMNS = (requests.c.id, requests.c.order_id, requests.c.root_id, requests.c.state, requests.c.urgency,
            requests.c.preauth_ref, requests.c.submitted_at, requests.c.decided_at, requests.c.deadline_at,
            requests.c.decision_channel, requests.c.attempts)


def _latest_requests(ledger: Ledger, payer: str) -> dict[str, _Request]:
    """The newest request of each order's case at ``payer``, keyed by the original order id."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(*_COLUMNS).where(requests.c.payer == payer).order_by(requests.c.created_at)).all()
    root_order = {r.id: r.order_id for r in rows if r.root_id is None}
    newest: dict[str, _Request] = {}
    for r in rows:
        order_id = root_order.get(r.root_id, r.order_id) if r.root_id else r.order_id
        newest[order_id] = _Request(id=r.id, state=r.state, urgency=r.urgency, preauth_ref=r.preauth_ref,
                                    submitted_at=as_utc(r.submitted_at), decided_at=as_utc(r.decided_at),
                                    deadline_at=as_utc(r.deadline_at), decision_channel=r.decision_channel,
                                    attempts=r.attempts)
    return newest


def _denials(ledger: Ledger, wanted: list[str]) -> dict[str, tuple[str, ...]]:
    """Payer reasons of denied items, read from the decisions of ``wanted`` requests only, a chunk at a time."""
    found: dict[str, tuple[str, ...]] = {}
    for start in range(0, len(wanted), 500):
        with ledger.engine.connect() as conn:
            rows = conn.execute(select(requests.c.id, requests.c.decision_body)
                                .where(requests.c.id.in_(wanted[start:start + 500]))).all()
        for record_id, body in rows:
            if body is None:
                continue
            try:
                decision = parse_response(bytes(body), source="stored answer")
            except FhirPaError:
                continue
            found[record_id] = denial_reasons(decision)
    return found


def _crd_answers(ledger: Ledger, payer: str) -> dict[str, str | None]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(workflow_steps.c.order_id, workflow_steps.c.body)
                            .where(workflow_steps.c.payer == payer, workflow_steps.c.step == "crd")
                            .order_by(workflow_steps.c.id)).all()
    found: dict[str, str | None] = {}
    for order_id, body in rows:
        try:
            found[order_id] = json.loads(bytes(body)).get("pa_needed") if body is not None else None
        except ValueError:
            found[order_id] = None
    return found


def _documentation(ledger: Ledger, payer: str) -> dict[str, str]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(workflow_steps.c.order_id, workflow_steps.c.detail)
                            .where(workflow_steps.c.payer == payer, workflow_steps.c.step == "dtr")
                            .order_by(workflow_steps.c.id)).all()
    found: dict[str, str] = {}
    for order_id, detail in rows:
        text = detail or ""
        found[order_id] = "held" if "held" in text else "completed" if "completed" in text else "auto"
    return found


def rows_for_run(ledger: Ledger, run_id: str, payer: str) -> list[BatchRow]:
    items = ledger.runs.items(run_id)
    latest = _latest_requests(ledger, payer)
    crd = _crd_answers(ledger, payer)
    docs = _documentation(ledger, payer)
    denials = _denials(ledger, [r.id for r in latest.values() if r.state in ("denied", "partial")])
    return [_row(item, latest.get(item.order_id), crd.get(item.order_id), docs.get(item.order_id, "none"), denials)
            for item in items]


def _row(item: ItemState, record: _Request | None, pa_needed: str | None, documentation: str,
         denials: dict[str, tuple[str, ...]]) -> BatchRow:
    outcome: Any
    error_code, error = item.error_code, item.error
    if item.status == "done" and item.outcome in _OUTCOMES:
        outcome = item.outcome
    elif record is not None and record.state not in ("prepared", "sending", "failed"):
        outcome = outcome_of_state(record.state)
    else:
        outcome = "error"
        error_code = error_code or "not-finished"
        error = error or f"not finished (batch status {item.status})"
    if record is not None and outcome not in ("error", "needs-documentation", "no-auth-needed"):
        outcome = outcome_of_state(record.state)  # a notification may have come since the item was settled
    typed: Outcome = outcome
    return BatchRow(
        order_id=item.order_id, outcome=typed,
        urgency="expedited" if record is not None and record.urgency == "expedited" else "standard",
        state=record.state if record else None, record_id=record.id if record else None,
        preauth_ref=record.preauth_ref if record else None, submitted_at=record.submitted_at if record else None,
        decided_at=record.decided_at if record else None, deadline_at=record.deadline_at if record else None,
        channel=record.decision_channel if record else None, pa_needed=pa_needed, documentation=documentation,
        denial_reasons=denials.get(record.id, ()) if record else (), error_code=error_code, error=error,
        worker=item.worker, attempts=record.attempts if record else 0)

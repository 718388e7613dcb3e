"""CDS Hooks calls as the ledger remembers them: the exact bytes sent and received, and whether the payer was
heard in time. Reached as ``ledger.hooks``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import insert, select

from fhir_pa.ledger.clock import as_utc
from fhir_pa.ledger.schema import hook_calls

if TYPE_CHECKING:
    from fhir_pa.ledger.store import Ledger


@dataclass(frozen=True)
class HookCall:
    id: int
    hook: str
    hook_instance: str | None
    service_url: str | None
    patient_id: str | None
    started_at: datetime
    elapsed_ms: int
    status_code: int | None
    answered: bool
    problem: str | None
    request_body: bytes | None
    response_body: bytes | None


class HookLog:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def record(self, *, hook: str, hook_instance: str | None, service_url: str | None, patient_id: str | None,
               started_at: datetime, elapsed_ms: int, status_code: int | None, answered: bool,
               problem: str | None, request_body: bytes | None, response_body: bytes | None) -> int:
        with self._ledger._tx() as conn:
            result = conn.execute(insert(hook_calls).values(
                hook=hook, hook_instance=hook_instance, service_url=service_url, patient_id=patient_id,
                started_at=started_at, elapsed_ms=elapsed_ms, status_code=status_code, answered=int(answered),
                problem=problem, request_body=request_body, response_body=response_body))
            key = result.inserted_primary_key
        return int(key[0]) if key else 0

    def all(self, *, hook_instance: str | None = None) -> list[HookCall]:
        query = select(hook_calls).order_by(hook_calls.c.id)
        if hook_instance is not None:
            query = query.where(hook_calls.c.hook_instance == hook_instance)
        with self._ledger._read() as conn:
            rows = conn.execute(query).all()
        return [HookCall(id=r.id, hook=r.hook, hook_instance=r.hook_instance, service_url=r.service_url,
                         patient_id=r.patient_id,
                         started_at=as_utc(r.started_at), elapsed_ms=r.elapsed_ms, status_code=r.status_code,
                         answered=bool(r.answered), problem=r.problem,
                         request_body=bytes(r.request_body) if r.request_body is not None else None,
                         response_body=bytes(r.response_body) if r.response_body is not None else None)
                for r in rows]

"""The notification log: every authenticated notification body, kept before it is processed.

The receiver answers the payer at once and processes afterwards; storing first means a crash in between loses
nothing (:meth:`NotificationLog.unprocessed` hands those bodies back on restart). The log is also how
duplicates are recognised: an event number already processed for a subscription is not applied twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update

from fhir_pa.ledger.clock import as_utc
from fhir_pa.ledger.schema import notifications

if TYPE_CHECKING:
    from fhir_pa.ledger.store import Ledger


@dataclass(frozen=True)
class StoredNotification:
    id: int
    received_at: datetime
    body: bytes
    subscription: str | None
    type: str | None
    event_number: int | None
    focus: str | None
    request_id: str | None
    outcome: str | None
    detail: str | None


class NotificationLog:
    """Notification bodies and what became of them; reached as ``ledger.notifications``."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def store(self, body: bytes, *, received_at: datetime, subscription: str | None = None) -> int:
        """Keep a body as received (``subscription``: our id of the Subscription that authenticated it)."""
        with self._ledger._tx() as conn:
            result = conn.execute(insert(notifications).values(received_at=received_at, body=body,
                                                               subscription=subscription))
        key = result.inserted_primary_key
        if key is None:  # pragma: no cover - every supported database returns the new key
            raise RuntimeError("the ledger did not return the new notification id")
        return int(key[0])

    def mark(self, notification_id: int, *, outcome: str, type: str | None = None, subscription: str | None = None,
             event_number: int | None = None, focus: str | None = None, request_id: str | None = None,
             detail: str | None = None) -> None:
        with self._ledger._tx() as conn:
            conn.execute(update(notifications).where(notifications.c.id == notification_id).values(
                outcome=outcome, type=type, subscription=subscription, event_number=event_number, focus=focus,
                request_id=request_id, detail=detail))

    def seen(self, subscription: str | None, event_number: int, focus: str | None, *, before: int) -> bool:
        """True when an earlier notification (id below ``before``) already carried this event."""
        query = select(notifications.c.id).where(
            notifications.c.event_number == event_number, notifications.c.id < before,
            notifications.c.outcome.is_not(None), notifications.c.outcome != "invalid")
        query = query.where(notifications.c.subscription == subscription if subscription is not None
                            else notifications.c.subscription.is_(None))
        if focus is not None:
            query = query.where(notifications.c.focus == focus)
        with self._ledger._read() as conn:
            return conn.execute(query.limit(1)).first() is not None

    def unprocessed(self) -> list[StoredNotification]:
        return self._select(notifications.c.outcome.is_(None))

    def all(self, *, request_id: str | None = None) -> list[StoredNotification]:
        condition = notifications.c.request_id == request_id if request_id is not None else notifications.c.id > 0
        return self._select(condition)

    def _select(self, condition: object) -> list[StoredNotification]:
        with self._ledger._read() as conn:
            rows = conn.execute(select(notifications).where(condition).order_by(notifications.c.id)).all()  # type: ignore[arg-type]
        return [StoredNotification(
            id=r.id, received_at=as_utc(r.received_at), body=bytes(r.body), subscription=r.subscription, type=r.type,
            event_number=r.event_number, focus=r.focus, request_id=r.request_id, outcome=r.outcome,
            detail=r.detail) for r in rows]

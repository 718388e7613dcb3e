"""Our PAS Subscriptions, one per payer and sending system, as the ledger remembers them.

The token the payer must present on notifications is never stored, only its SHA-256: the receiver compares
hashes, and a re-request issues a fresh token.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from fhir_pa.ledger.clock import as_utc
from fhir_pa.ledger.schema import subscriptions

if TYPE_CHECKING:
    from fhir_pa.ledger.store import Ledger


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SubscriptionRecord:
    id: str
    payer: str
    sending_system_id: str
    remote_id: str | None
    remote_url: str | None
    endpoint: str
    status: str
    token_sha256: str
    error: str | None
    created_at: datetime
    updated_at: datetime
    checked_at: datetime | None
    last_notification_at: datetime | None
    last_event_number: int | None


def _record(row: Any) -> SubscriptionRecord:
    m = row._mapping
    values = {key: m[key] for key in SubscriptionRecord.__dataclass_fields__}
    for key, value in values.items():
        if isinstance(value, datetime):
            values[key] = as_utc(value)
    return SubscriptionRecord(**values)


class SubscriptionBook:
    """Subscriptions by payer and sending system; reached as ``ledger.subscriptions``."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def get(self, payer: str, sending_system_id: str) -> SubscriptionRecord | None:
        with self._ledger._read() as conn:
            row = conn.execute(select(subscriptions).where(subscriptions.c.payer == payer,
                                                           subscriptions.c.sending_system_id == sending_system_id)
                               ).first()
        return _record(row) if row is not None else None

    def by_id(self, record_id: str) -> SubscriptionRecord | None:
        with self._ledger._read() as conn:
            row = conn.execute(select(subscriptions).where(subscriptions.c.id == record_id)).first()
        return _record(row) if row is not None else None

    def all(self) -> list[SubscriptionRecord]:
        with self._ledger._read() as conn:
            return [_record(r) for r in conn.execute(select(subscriptions).order_by(subscriptions.c.created_at))]

    def save(self, *, payer: str, sending_system_id: str, endpoint: str, status: str, token: str | None,
             remote_id: str | None, remote_url: str | None, error: str | None, at: datetime) -> SubscriptionRecord:
        """Create or replace the record for (payer, sending system); ``token=None`` keeps the current one."""
        existing = self.get(payer, sending_system_id)
        values: dict[str, Any] = {"endpoint": endpoint, "status": status, "remote_id": remote_id,
                                  "remote_url": remote_url, "error": error, "updated_at": at, "checked_at": at}
        if token is not None:
            values["token_sha256"] = token_digest(token)
        with self._ledger._tx() as conn:
            if existing is None:
                if token is None:
                    raise ValueError("a new subscription record needs its token")
                conn.execute(insert(subscriptions).values(id=str(uuid.uuid4()), payer=payer,
                                                          sending_system_id=sending_system_id, created_at=at,
                                                          **values))
            else:
                conn.execute(update(subscriptions).where(subscriptions.c.id == existing.id).values(**values))
        found = self.get(payer, sending_system_id)
        assert found is not None
        return found

    def set_status(self, record_id: str, status: str, *, error: str | None, at: datetime) -> None:
        with self._ledger._tx() as conn:
            conn.execute(update(subscriptions).where(subscriptions.c.id == record_id).values(
                status=status, error=error, checked_at=at))

    def authenticate(self, token: str) -> SubscriptionRecord | None:
        """The subscription whose header token this is, compared in constant time; None if none."""
        digest = token_digest(token)
        found: SubscriptionRecord | None = None
        for record in self.all():
            if hmac.compare_digest(record.token_sha256, digest):
                found = record
        return found

    def heard(self, record_id: str, *, at: datetime, event_number: int | None) -> None:
        values: dict[str, Any] = {"last_notification_at": at}
        if event_number is not None:
            values["last_event_number"] = event_number
        with self._ledger._tx() as conn:
            conn.execute(update(subscriptions).where(subscriptions.c.id == record_id).values(**values))

"""The ledger: a durable record of every prior-auth request, the exact bytes exchanged, and its history.

The request body is stored *before* the first send, so a crash at any point leaves enough to resend the
very same bytes (same identifiers) and never a second, different request. SQLite by default; any SQLAlchemy
URL works for the schema.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from fhir_pa.errors import LedgerError
from fhir_pa.ledger import clock
from fhir_pa.ledger.schema import events, exchanges, metadata, requests

#: States in which the payer has given its final word (or refused the request for good).
FINAL_STATES = frozenset({"approved", "denied", "partial", "modified", "cancelled", "error", "rejected"})
#: States in which the stored bytes may (and should) be sent again.
RESENDABLE_STATES = frozenset({"prepared", "sending", "failed", "invalid-response"})

DEFAULT_PATH = Path(".fhir-pa") / "ledger.sqlite"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LedgerRecord:
    id: str
    order_id: str
    payer: str
    bundle_identifier: str
    claim_identifier: str
    urgency: str
    state: str
    created_at: datetime
    submitted_at: datetime | None
    decided_at: datetime | None
    deadline_at: datetime | None
    preauth_ref: str | None
    claim_response_id: str | None
    attempts: int
    error_code: str | None
    error: str | None
    request_body: bytes

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def time_left(self, now: datetime | None = None) -> str:
        """Where the request stands on the CMS clock."""
        if self.deadline_at is None:
            return "not started"
        if self.decided_at is not None:
            margin = self.deadline_at - self.decided_at
            return "decided in time" if margin.total_seconds() >= 0 else "decided late"
        return clock.describe(self.deadline_at - (now or now_utc()))


@dataclass(frozen=True)
class Exchange:
    kind: str
    url: str
    request_sha256: str
    started_at: datetime
    finished_at: datetime
    delivery: str
    status_code: int | None
    content_type: str | None
    response_body: bytes | None
    error: str | None


@dataclass(frozen=True)
class Event:
    at: datetime
    state: str
    detail: str | None


def _record(row: Any) -> LedgerRecord:
    m = row._mapping
    return LedgerRecord(
        id=m["id"], order_id=m["order_id"], payer=m["payer"], bundle_identifier=m["bundle_identifier"],
        claim_identifier=m["claim_identifier"], urgency=m["urgency"], state=m["state"],
        created_at=_utc(m["created_at"]) or now_utc(), submitted_at=_utc(m["submitted_at"]),
        decided_at=_utc(m["decided_at"]), deadline_at=_utc(m["deadline_at"]), preauth_ref=m["preauth_ref"],
        claim_response_id=m["claim_response_id"], attempts=m["attempts"], error_code=m["error_code"],
        error=m["error"], request_body=bytes(m["request_body"]),
    )


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"


class Ledger:
    """Durable request records. Thread-safe; one instance may serve sync and async clients alike."""

    def __init__(self, url: str | None = None) -> None:
        if url is None:
            DEFAULT_PATH.parent.mkdir(parents=True, exist_ok=True)
            url = sqlite_url(DEFAULT_PATH)
        elif url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        try:
            self.engine: Engine = create_engine(url, future=True)
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot open the ledger at {self._where()}: {type(exc).__name__}") from None
        self._lock = threading.Lock()

    def _where(self) -> str:
        return self.url.split("@")[-1]  # never print credentials of a database URL

    @classmethod
    def at_path(cls, path: str | Path) -> Ledger:
        return cls(sqlite_url(path))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self._lock, self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger write failed at {self._where()}: {type(exc).__name__}") from None

    # -- writing --------------------------------------------------------------------------------------

    def record_intent(self, *, order_id: str, payer: str, bundle_identifier: str, claim_identifier: str,
                      urgency: str, body: bytes) -> LedgerRecord:
        """Store the request before it is sent. Returns the existing record if this order was already
        recorded for this payer (so a second call never creates a second request)."""
        existing = self.find(payer=payer, order_id=order_id)
        if existing is not None:
            return existing
        now = now_utc()
        record_id = str(uuid.uuid4())
        try:
            with self._tx() as conn:
                conn.execute(insert(requests).values(
                    id=record_id, order_id=order_id, payer=payer, bundle_identifier=bundle_identifier,
                    claim_identifier=claim_identifier, urgency=urgency, state="prepared", created_at=now,
                    attempts=0, request_body=body, request_sha256=hashlib.sha256(body).hexdigest()))
                conn.execute(insert(events).values(request_id=record_id, at=now, state="prepared", detail=None))
        except IntegrityError:
            found = self.find(payer=payer, order_id=order_id)
            if found is None:
                raise LedgerError("ledger refused a new request record (identifier already used)") from None
            return found
        return self.get(record_id)

    def record_exchange(self, record_id: str, *, kind: str, url: str, body: bytes, started_at: datetime,
                        delivery: str, status_code: int | None = None, content_type: str | None = None,
                        response_body: bytes | None = None, error: str | None = None) -> None:
        """Keep one HTTP exchange; bumps the attempt count and, on first delivery, starts the CMS clock."""
        finished = now_utc()
        with self._tx() as conn:
            conn.execute(insert(exchanges).values(
                request_id=record_id, kind=kind, url=url, request_sha256=hashlib.sha256(body).hexdigest(),
                started_at=started_at, finished_at=finished, delivery=delivery, status_code=status_code,
                content_type=content_type, response_body=response_body, error=error))
            row = conn.execute(select(requests.c.attempts, requests.c.submitted_at, requests.c.urgency)
                               .where(requests.c.id == record_id)).one()
            values: dict[str, Any] = {"attempts": row.attempts + 1}
            if delivery == "sent" and row.submitted_at is None:
                values["submitted_at"] = started_at
                values["deadline_at"] = clock.deadline(started_at, row.urgency)
            conn.execute(update(requests).where(requests.c.id == record_id).values(**values))

    def set_state(self, record_id: str, state: str, *, detail: str | None = None, preauth_ref: str | None = None,
                  claim_response_id: str | None = None, error_code: str | None = None,
                  error: str | None = None) -> None:
        now = now_utc()
        values: dict[str, Any] = {"state": state, "error_code": error_code, "error": error}
        if preauth_ref is not None:
            values["preauth_ref"] = preauth_ref
        if claim_response_id is not None:
            values["claim_response_id"] = claim_response_id
        if state in FINAL_STATES:
            values["decided_at"] = now
        with self._tx() as conn:
            conn.execute(update(requests).where(requests.c.id == record_id).values(**values))
            conn.execute(insert(events).values(request_id=record_id, at=now, state=state, detail=detail))

    # -- reading --------------------------------------------------------------------------------------

    def get(self, record_id: str) -> LedgerRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(requests).where(requests.c.id == record_id)).first()
        if row is None:
            raise LedgerError(f"no request {record_id!r} in the ledger")
        return _record(row)

    def find(self, *, payer: str, order_id: str) -> LedgerRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(requests).where(requests.c.payer == payer,
                                                      requests.c.order_id == order_id)).first()
        return _record(row) if row is not None else None

    def records(self, *, states: Sequence[str] | None = None, limit: int | None = None) -> list[LedgerRecord]:
        query = select(requests).order_by(requests.c.created_at)
        if states:
            query = query.where(requests.c.state.in_(list(states)))
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def exchanges(self, record_id: str) -> list[Exchange]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(exchanges).where(exchanges.c.request_id == record_id)
                                .order_by(exchanges.c.id)).all()
        return [Exchange(kind=r.kind, url=r.url, request_sha256=r.request_sha256,
                         started_at=_utc(r.started_at) or now_utc(), finished_at=_utc(r.finished_at) or now_utc(),
                         delivery=r.delivery, status_code=r.status_code, content_type=r.content_type,
                         response_body=bytes(r.response_body) if r.response_body is not None else None,
                         error=r.error) for r in rows]

    def history(self, record_id: str) -> list[Event]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(events).where(events.c.request_id == record_id).order_by(events.c.id)).all()
        return [Event(at=_utc(r.at) or now_utc(), state=r.state, detail=r.detail) for r in rows]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()

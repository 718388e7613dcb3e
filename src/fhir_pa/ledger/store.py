"""The ledger: a durable record of every prior-auth request, the exact bytes exchanged, and its history.

The request body is stored *before* the first send, so a crash at any point leaves enough to resend the
very same bytes (same identifiers) and never a second, different request. SQLite by default, or PostgreSQL
when several processes share one ledger (``postgresql+psycopg://...``); see :mod:`fhir_pa.ledger.engine`.
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

from sqlalchemy import Connection, Engine, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from fhir_pa.errors import LedgerError
from fhir_pa.ledger import clock
from fhir_pa.ledger.engine import create_schema, describe, open_engine
from fhir_pa.ledger.hooks import HookLog
from fhir_pa.ledger.notifications import NotificationLog
from fhir_pa.ledger.runs import BatchBook
from fhir_pa.ledger.schema import events, exchanges, metadata, requests
from fhir_pa.ledger.steps import StepLog
from fhir_pa.ledger.subscriptions import SubscriptionBook

#: States in which the payer has given its final word (or refused the request for good).
FINAL_STATES = frozenset({"approved", "denied", "partial", "modified", "cancelled", "error", "rejected"})
#: States in which the stored bytes may (and should) be sent again.
RESENDABLE_STATES = frozenset({"prepared", "sending", "failed", "invalid-response"})

DEFAULT_PATH = Path(".fhir-pa") / "ledger.sqlite"


_utc = clock.as_utc


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
    kind: str = "submit"
    prior_id: str | None = None
    root_id: str | None = None
    decision_body: bytes | None = None
    decision_channel: str | None = None
    last_event_number: int | None = None
    last_heard_at: datetime | None = None
    next_poll_at: datetime | None = None
    polls: int = 0

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def case_id(self) -> str:
        """The id of the original request: every update of one prior authorization shares it."""
        return self.root_id or self.id

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
        error=m["error"], request_body=bytes(m["request_body"]), kind=m["kind"] or "submit",
        prior_id=m["prior_id"], root_id=m["root_id"],
        decision_body=bytes(m["decision_body"]) if m["decision_body"] is not None else None,
        decision_channel=m["decision_channel"], last_event_number=m["last_event_number"],
        last_heard_at=_utc(m["last_heard_at"]), next_poll_at=_utc(m["next_poll_at"]), polls=m["polls"] or 0,
    )


#: What :meth:`Ledger.advance` did with a decision: took it, already had it, or knew something newer.
APPLIED, UNCHANGED, STALE = "applied", "unchanged", "stale"


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
            self.engine: Engine = open_engine(url)
            create_schema(self.engine, metadata)
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot open the ledger at {self._where()}: {type(exc).__name__}") from None
        except ImportError as exc:
            raise LedgerError(f"cannot open the ledger at {self._where()}: its database driver is missing "
                              f"({exc.name}; for PostgreSQL install fhir-pa[postgres])") from None
        self._lock = threading.Lock()
        self.notifications = NotificationLog(self)
        self.subscriptions = SubscriptionBook(self)
        self.hooks = HookLog(self)
        self.steps = StepLog(self)
        self.runs = BatchBook(self)

    def _where(self) -> str:
        return describe(self.url)  # never the credentials of a database URL

    @classmethod
    def at_path(cls, path: str | Path) -> Ledger:
        return cls(sqlite_url(path))

    @classmethod
    def open(cls, location: str | Path) -> Ledger:
        """A ledger at a database URL (``postgresql+psycopg://...``, ``sqlite:///...``) or a SQLite file path."""
        text = str(location)
        return cls(text) if "://" in text else cls.at_path(text)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self._lock, self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger write failed at {self._where()}: {type(exc).__name__}") from None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for reading; a database gone away (a server, unlike a file, can) is a LedgerError too."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger read failed at {self._where()}: {type(exc).__name__}") from None

    # -- writing --------------------------------------------------------------------------------------

    def record_intent(self, *, order_id: str, payer: str, bundle_identifier: str, claim_identifier: str,
                      urgency: str, body: bytes, kind: str = "submit", prior: LedgerRecord | None = None,
                      ) -> LedgerRecord:
        """Store the request before it is sent. Returns the existing record if this order was already
        recorded for this payer (so a second call never creates a second request).

        An update or cancel names its ``prior`` request; it joins that request's case (``root_id``).
        """
        existing = self.find(payer=payer, order_id=order_id)
        if existing is not None:
            return existing
        now = now_utc()
        record_id = str(uuid.uuid4())
        row = {"id": record_id, "order_id": order_id, "payer": payer, "bundle_identifier": bundle_identifier,
               "claim_identifier": claim_identifier, "urgency": urgency, "state": "prepared", "created_at": now,
               "attempts": 0, "request_body": body, "request_sha256": hashlib.sha256(body).hexdigest(), "kind": kind,
               "prior_id": prior.id if prior else None, "root_id": prior.case_id if prior else None, "polls": 0}
        try:
            with self._tx() as conn:
                inserted = _insert_request(conn, row)
                if inserted:
                    conn.execute(insert(events).values(request_id=record_id, at=now, state="prepared", detail=None))
        except IntegrityError:  # rolled back by now, so the lookup below runs in a fresh transaction
            inserted = False
        if inserted:
            return self.get(record_id)
        found = self.find(payer=payer, order_id=order_id)
        if found is None:
            raise LedgerError("ledger refused a new request record (identifier already used)")
        return found

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
                               .where(requests.c.id == record_id).with_for_update(key_share=True)).one()
            values: dict[str, Any] = {"attempts": row.attempts + 1} if kind == "submit" else {}
            if delivery == "sent" and row.submitted_at is None:
                values["submitted_at"] = started_at
                values["deadline_at"] = clock.deadline(started_at, row.urgency)
            if values:
                conn.execute(update(requests).where(requests.c.id == record_id).values(**values))

    def set_state(self, record_id: str, state: str, *, detail: str | None = None, preauth_ref: str | None = None,
                  claim_response_id: str | None = None, error_code: str | None = None,
                  error: str | None = None, decision_body: bytes | None = None,
                  channel: str | None = None) -> None:
        now = now_utc()
        values: dict[str, Any] = {"state": state, "error_code": error_code, "error": error}
        if preauth_ref is not None:
            values["preauth_ref"] = preauth_ref
        if claim_response_id is not None:
            values["claim_response_id"] = claim_response_id
        if decision_body is not None:
            values["decision_body"] = decision_body
            values["decision_channel"] = channel
            values["last_heard_at"] = now
        if state in FINAL_STATES:
            values["decided_at"] = now
        with self._tx() as conn:
            conn.execute(update(requests).where(requests.c.id == record_id).values(**values))
            conn.execute(insert(events).values(request_id=record_id, at=now, state=state, detail=detail))

    def advance(self, record_id: str, state: str, *, channel: str, body: bytes, detail: str | None = None,
                preauth_ref: str | None = None, claim_response_id: str | None = None,
                event_number: int | None = None, event_source: str | None = None) -> str:
        """Apply a later answer about a request (a notification, a poll, an inquiry), unless it is stale.

        Returns :data:`APPLIED`, :data:`UNCHANGED` (we already knew this) or :data:`STALE` (we know something
        newer: a final decision is never replaced by a pend, and an event numbered at or below the last one
        applied from the same subscription is old news arriving out of order). Checked and written in one
        transaction, so a receiver and a poller racing on the same request cannot regress it.
        """
        now = now_utc()
        with self._tx() as conn:  # the row stays locked to commit: a racing writer decides on what we wrote
            row = conn.execute(select(requests).where(requests.c.id == record_id)
                               .with_for_update(key_share=True)).first()
            if row is None:
                raise LedgerError(f"no request {record_id!r} in the ledger")
            m = row._mapping
            values: dict[str, Any] = {"last_heard_at": now}
            old_event = (event_number is not None and m["last_event_number"] is not None
                         and m["last_event_source"] == event_source and event_number <= m["last_event_number"])
            regresses = m["state"] in FINAL_STATES and state not in FINAL_STATES
            if old_event or regresses:
                verdict = STALE
            elif m["state"] == state and (preauth_ref is None or preauth_ref == m["preauth_ref"]):
                verdict = UNCHANGED
            else:
                verdict = APPLIED
            if verdict != STALE and event_number is not None:
                values.update(last_event_number=event_number, last_event_source=event_source)
            if verdict == APPLIED:
                values.update(state=state, decision_body=body, decision_channel=channel, error=None, error_code=None)
                if preauth_ref is not None:
                    values["preauth_ref"] = preauth_ref
                if claim_response_id is not None:
                    values["claim_response_id"] = claim_response_id
                if state in FINAL_STATES and m["decided_at"] is None:
                    values["decided_at"] = now
                conn.execute(insert(events).values(request_id=record_id, at=now, state=state,
                                                   detail=detail or f"via {channel}"))
            conn.execute(update(requests).where(requests.c.id == record_id).values(**values))
        return verdict

    def schedule_poll(self, record_id: str, at: datetime | None, *, polled: bool = True) -> None:
        """Remember when to poll next (None: only when the payer goes quiet), so a restarted tracker keeps the
        backoff instead of hammering the payer; ``polled`` counts a poll just made."""
        with self._tx() as conn:
            values: dict[str, Any] = {"next_poll_at": at}
            if polled:
                values["polls"] = requests.c.polls + 1
            conn.execute(update(requests).where(requests.c.id == record_id).values(**values))

    # -- reading --------------------------------------------------------------------------------------

    def get(self, record_id: str) -> LedgerRecord:
        with self._read() as conn:
            row = conn.execute(select(requests).where(requests.c.id == record_id)).first()
        if row is None:
            raise LedgerError(f"no request {record_id!r} in the ledger")
        return _record(row)

    def find(self, *, payer: str, order_id: str) -> LedgerRecord | None:
        with self._read() as conn:
            row = conn.execute(select(requests).where(requests.c.payer == payer,
                                                      requests.c.order_id == order_id)).first()
        return _record(row) if row is not None else None

    def match(self, *, identifiers: Sequence[str] = (), claim_response_id: str | None = None,
              preauth_ref: str | None = None, payer: str | None = None) -> LedgerRecord | None:
        """The newest request of the case a payer's answer is about (matched by any identifier it carries).

        ``identifiers`` are ``system|value`` (or bare values) of the request Claim or Bundle. When the match is a
        request that was later updated, the newest update is returned: the payer's answer is about the case.
        """
        conditions: list[Any] = []
        for text in identifiers:
            conditions += [requests.c.claim_identifier == text, requests.c.bundle_identifier == text]
            if "|" not in text:
                conditions += [requests.c.claim_identifier.like(f"%|{text}"),
                               requests.c.bundle_identifier.like(f"%|{text}")]
        if claim_response_id:
            conditions.append(requests.c.claim_response_id == claim_response_id)
        if preauth_ref:
            conditions.append(requests.c.preauth_ref == preauth_ref)
        if not conditions:
            return None
        query = select(requests).where(or_(*conditions))
        if payer is not None:
            query = query.where(requests.c.payer == payer)
        with self._read() as conn:
            rows = conn.execute(query.order_by(requests.c.created_at)).all()
        if not rows:
            return None
        return self.latest_in_case(_record(rows[0]).case_id)

    def latest_in_case(self, case_id: str) -> LedgerRecord:
        """The newest request (original, update or cancel) of one prior authorization."""
        with self._read() as conn:
            row = conn.execute(select(requests).where(or_(requests.c.id == case_id, requests.c.root_id == case_id))
                               .order_by(requests.c.created_at.desc()).limit(1)).first()
        if row is None:
            raise LedgerError(f"no request {case_id!r} in the ledger")
        return _record(row)

    def lookup(self, key: str) -> LedgerRecord:
        """A request by record id, or by order id (the newest request of that order's case)."""
        with self._read() as conn:
            row = conn.execute(select(requests).where(or_(requests.c.id == key, requests.c.order_id == key))
                               .order_by(requests.c.created_at.desc()).limit(1)).first()
        if row is None:
            raise LedgerError(f"no request or order {key!r} in the ledger")
        return self.latest_in_case(_record(row).case_id)

    def records(self, *, states: Sequence[str] | None = None, limit: int | None = None) -> list[LedgerRecord]:
        query = select(requests).order_by(requests.c.created_at)
        if states:
            query = query.where(requests.c.state.in_(list(states)))
        if limit:
            query = query.limit(limit)
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def exchanges(self, record_id: str) -> list[Exchange]:
        with self._read() as conn:
            rows = conn.execute(select(exchanges).where(exchanges.c.request_id == record_id)
                                .order_by(exchanges.c.id)).all()
        return [Exchange(kind=r.kind, url=r.url, request_sha256=r.request_sha256,
                         started_at=_utc(r.started_at) or now_utc(), finished_at=_utc(r.finished_at) or now_utc(),
                         delivery=r.delivery, status_code=r.status_code, content_type=r.content_type,
                         response_body=bytes(r.response_body) if r.response_body is not None else None,
                         error=r.error) for r in rows]

    def history(self, record_id: str) -> list[Event]:
        with self._read() as conn:
            rows = conn.execute(select(events).where(events.c.request_id == record_id).order_by(events.c.id)).all()
        return [Event(at=_utc(r.at) or now_utc(), state=r.state, detail=r.detail) for r in rows]


def _insert_request(conn: Connection, row: dict[str, Any]) -> bool:
    """Insert a request row unless its (payer, order) is already recorded; True when this call inserted it.

    On PostgreSQL an insert racing another process's for the same order waits for that transaction, then does
    nothing instead of failing (a failed statement would abort ours); SQLite, one writer at a time, raises
    IntegrityError, as it always did.
    """
    if conn.dialect.name == "postgresql":
        statement = (pg_insert(requests).values(**row).on_conflict_do_nothing(constraint="uq_requests_payer_order")
                     .returning(requests.c.id))  # a row back when inserted (rowcount is not reliable here)
        return conn.execute(statement).first() is not None
    conn.execute(insert(requests).values(**row))
    return True

"""The prior authorizations in a ledger, one :class:`Case` each: an original request with its updates and cancels.

Reports count cases, not rows: a Claim Update or a cancel (``root_id``) is the same prior authorization as the
request it amends, so it moves the case's state but never adds a request. The query lives here rather than in
the ledger because reports read a few columns of many rows, and bodies only when asked for (they are large).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, null, or_, select
from sqlalchemy.exc import SQLAlchemyError

from fhir_pa.errors import LedgerError
from fhir_pa.ledger import clock
from fhir_pa.ledger.schema import requests
from fhir_pa.ledger.store import FINAL_STATES, Ledger

_COLUMNS = (requests.c.id, requests.c.root_id, requests.c.payer, requests.c.bundle_identifier, requests.c.urgency,
            requests.c.state, requests.c.created_at, requests.c.submitted_at, requests.c.decided_at,
            requests.c.deadline_at, requests.c.preauth_ref)


def as_utc(value: datetime) -> datetime:
    """An aware UTC time; a naive one is taken as UTC (SQLite hands back naive datetimes; the ledger writes UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


@dataclass(frozen=True)
class Case:
    """One prior authorization. Its state is the newest; its times are the original request's.

    ``state`` comes from the newest request of the case the payer received (an update still waiting to be sent
    changes nothing at the payer), else from the original. ``submitted_at`` and ``deadline_at`` are the original's
    CMS clock (updates do not restart it); ``decided_at`` is the first final answer anywhere in the case, since a
    payer may decide a pended request only once an update arrives.
    """

    id: str
    payer: str
    urgency: str
    bundle_identifier: str
    state: str
    current_id: str
    created_at: datetime
    submitted_at: datetime | None
    deadline_at: datetime | None
    decided_at: datetime | None
    preauth_ref: str | None
    request_count: int
    #: The original request Bundle's exact bytes (only when loaded ``with_request``).
    request_body: bytes | None = None
    #: The current request's newest payer answer (only for the ``answer_states`` asked for).
    decision_body: bytes | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def submitted_between(since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    """Conditions for requests the payer received in ``[since, until)`` (naive times are UTC): none at all when
    both are None, so requests never sent are kept; a bound excludes them (they have no time to compare)."""
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(requests.c.submitted_at >= as_utc(since))
    if until is not None:
        conditions.append(requests.c.submitted_at < as_utc(until))
    return conditions


def created_between(since: datetime, until: datetime) -> ColumnElement[bool]:
    """Requests recorded in ``[since, until)``, whether or not they were ever sent (naive times are UTC)."""
    return and_(requests.c.created_at >= as_utc(since), requests.c.created_at < as_utc(until))


def never_submitted() -> ColumnElement[bool]:
    return requests.c.submitted_at.is_(None)


def payer_is(payer: str) -> ColumnElement[bool]:
    """Requests to ``payer``, with or without a trailing slash on the base URL."""
    base = payer.rstrip("/")
    return or_(requests.c.payer == base, requests.c.payer == f"{base}/")


def load_cases(ledger: Ledger, *, where: Sequence[ColumnElement[bool]] = (), with_request: bool = False,
               answer_states: Collection[str] = ()) -> list[Case]:
    """The cases whose original request meets every condition in ``where``, oldest first."""
    root_filter = and_(requests.c.root_id.is_(None), *where)
    answer = (case((requests.c.state.in_(list(answer_states)), requests.c.decision_body), else_=null())
              if answer_states else null()).label("decision_body")
    body = (requests.c.request_body if with_request else null()).label("request_body")
    roots_query = select(*_COLUMNS, answer, body).where(root_filter).order_by(requests.c.created_at)
    members_query = (select(*_COLUMNS, answer)
                     .where(requests.c.root_id.in_(select(requests.c.id).where(root_filter)))
                     .order_by(requests.c.created_at))
    try:
        with ledger.engine.connect() as conn:
            roots = [row._mapping for row in conn.execute(roots_query)]
            members: dict[str, list[Any]] = defaultdict(list)
            for row in conn.execute(members_query):
                members[row.root_id].append(row._mapping)
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read the ledger for a report: {type(exc).__name__}") from None
    return [_case(root, members.get(root["id"], [])) for root in roots]


def _case(root: Any, members: list[Any]) -> Case:
    chain = [root, *members]  # oldest first
    delivered = [m for m in chain if m["submitted_at"] is not None]
    current = delivered[-1] if delivered else root
    decided = [t for t in (utc(m["decided_at"]) for m in chain) if t is not None]
    submitted = utc(root["submitted_at"])
    deadline = utc(root["deadline_at"])
    if deadline is None and submitted is not None:  # rows written before the clock column existed
        deadline = clock.deadline(submitted, root["urgency"])
    preauth = next((m["preauth_ref"] for m in reversed(delivered or [root]) if m["preauth_ref"]), None)
    request_body = root["request_body"]
    decision_body = current["decision_body"]
    return Case(
        id=root["id"], payer=root["payer"], urgency=root["urgency"], bundle_identifier=root["bundle_identifier"],
        state=current["state"], current_id=current["id"], created_at=utc(root["created_at"]) or datetime.now(UTC),
        submitted_at=submitted, deadline_at=deadline, decided_at=min(decided) if decided else None,
        preauth_ref=preauth, request_count=len(chain),
        request_body=bytes(request_body) if request_body is not None else None,
        decision_body=bytes(decision_body) if decision_body is not None else None,
    )

"""Ledger tables (SQLAlchemy Core, so the same schema runs on SQLite and, later, PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

#: One row per prior-auth request: the exact bytes we send (stored before the first send) and where it stands.
requests = Table(
    "requests", metadata,
    Column("id", String(36), primary_key=True),
    Column("order_id", String(200), nullable=False),
    Column("payer", String(500), nullable=False),
    Column("bundle_identifier", String(300), nullable=False, unique=True),
    Column("claim_identifier", String(300), nullable=False),
    Column("urgency", String(20), nullable=False),
    Column("state", String(30), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("submitted_at", DateTime(timezone=True)),
    Column("decided_at", DateTime(timezone=True)),
    Column("deadline_at", DateTime(timezone=True)),
    Column("preauth_ref", String(200)),
    Column("claim_response_id", String(200)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error_code", String(50)),
    Column("error", Text),
    Column("request_body", LargeBinary, nullable=False),
    Column("request_sha256", String(64), nullable=False),
    UniqueConstraint("payer", "order_id", name="uq_requests_payer_order"),
)

#: Every HTTP exchange about a request, with the exact bytes received.
exchanges = Table(
    "exchanges", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(36), ForeignKey("requests.id"), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("url", String(1000), nullable=False),
    Column("request_sha256", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    #: ``sent`` (a response came back), ``not-sent`` (no connection was made), ``unknown`` (sent, no answer)
    Column("delivery", String(20), nullable=False),
    Column("status_code", Integer),
    Column("content_type", String(200)),
    Column("response_body", LargeBinary),
    Column("error", Text),
)
Index("ix_exchanges_request", exchanges.c.request_id)

#: The status history of each request.
events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(36), ForeignKey("requests.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("state", String(30), nullable=False),
    Column("detail", Text),
)
Index("ix_events_request", events.c.request_id)

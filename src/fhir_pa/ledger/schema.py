"""Ledger tables (SQLAlchemy Core, so the same schema runs on SQLite and PostgreSQL).

PostgreSQL holds columns to their declared types where SQLite stores anything: what a payer sends (ids,
references, headers, codes) is therefore ``Text``, not a bounded ``String``, and event numbers, which payers count
as integer64, are ``BigInteger``. On SQLite both declare the same column affinity as before.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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
    Column("preauth_ref", Text),
    Column("claim_response_id", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error_code", String(50)),
    Column("error", Text),
    Column("request_body", LargeBinary, nullable=False),
    Column("request_sha256", String(64), nullable=False),
    #: ``submit`` (a new request), ``update`` or ``cancel`` (a Claim Update of ``prior_id``).
    Column("kind", String(20), nullable=False, server_default="submit"),
    Column("prior_id", String(36)),
    #: The original request of an update chain (None for the original itself): one prior authorization.
    Column("root_id", String(36)),
    #: The newest payer answer applied (a response Bundle), and how it came: submit, notification, poll.
    Column("decision_body", LargeBinary),
    Column("decision_channel", String(30)),
    #: Out-of-order protection: the newest notification event applied, and from which subscription.
    Column("last_event_number", BigInteger),
    Column("last_event_source", String(500)),
    #: When we last heard anything about this request (notification or poll), and when to poll next.
    Column("last_heard_at", DateTime(timezone=True)),
    Column("next_poll_at", DateTime(timezone=True)),
    Column("polls", Integer, nullable=False, server_default="0"),
    UniqueConstraint("payer", "order_id", name="uq_requests_payer_order"),
)
Index("ix_requests_claim_identifier", requests.c.claim_identifier)
Index("ix_requests_claim_response", requests.c.claim_response_id)

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
    Column("content_type", Text),
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

#: Every notification body a payer POSTed to us and we accepted (authenticated), stored before processing.
notifications = Table(
    "notifications", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("subscription", String(500)),
    Column("type", String(30)),
    Column("event_number", BigInteger),
    Column("focus", Text),
    Column("request_id", String(36)),
    #: None until processed; then applied, unchanged, stale, duplicate, unmatched, handshake, heartbeat, invalid.
    Column("outcome", String(20)),
    Column("detail", Text),
)
Index("ix_notifications_event", notifications.c.subscription, notifications.c.event_number)

#: Our PAS Subscription at each payer, one per sending system. Only a hash of the header token is kept.
subscriptions = Table(
    "subscriptions", metadata,
    Column("id", String(36), primary_key=True),
    Column("payer", String(500), nullable=False),
    Column("sending_system_id", String(200), nullable=False),
    Column("remote_id", Text),
    Column("remote_url", Text),
    Column("endpoint", String(1000), nullable=False),
    Column("status", Text, nullable=False),
    Column("token_sha256", String(64), nullable=False),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("checked_at", DateTime(timezone=True)),
    Column("last_notification_at", DateTime(timezone=True)),
    Column("last_event_number", BigInteger),
    UniqueConstraint("payer", "sending_system_id", name="uq_subscriptions_payer_system"),
)

#: Every CDS Hooks call we made (CRD found-37: retain hook requests and responses for disputes), as sent and received.
hook_calls = Table(
    "hook_calls", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hook", String(40), nullable=False),
    Column("hook_instance", String(64)),
    Column("service_url", String(1000)),
    Column("patient_id", String(64)),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("elapsed_ms", Integer, nullable=False),
    Column("status_code", Integer),
    Column("answered", Integer, nullable=False),
    Column("problem", Text),
    Column("request_body", LargeBinary),
    Column("response_body", LargeBinary),
)
Index("ix_hook_calls_instance", hook_calls.c.hook_instance)

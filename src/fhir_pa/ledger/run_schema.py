"""Tables of the workflow and of batch runs, beside the request tables (same metadata, same database).

``workflow_steps`` is the audit trail of each order's path (CRD, DTR, PAS, tracking, holds); ``batch_runs`` and
``batch_items`` hold a batch's input and who is working on which order, so several workers (on PostgreSQL) share
one run and a killed worker's orders are taken up again.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, LargeBinary, PrimaryKeyConstraint, String, Table, Text

from fhir_pa.ledger.schema import metadata

#: One row per step an order's workflow took, with what it produced (a held form, a CRD summary) when useful.
workflow_steps = Table(
    "workflow_steps", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(200), nullable=False),
    Column("payer", String(500), nullable=False),
    #: crd, dtr, pas, track, hold, error.
    Column("step", String(20), nullable=False),
    Column("outcome", String(40), nullable=False),
    Column("detail", Text),
    Column("body", LargeBinary),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("elapsed_ms", Integer),
    Column("worker", String(200)),
)
Index("ix_workflow_steps_order", workflow_steps.c.payer, workflow_steps.c.order_id)

#: A batch run: its input, recorded once by the first worker to start it.
batch_runs = Table(
    "batch_runs", metadata,
    Column("id", String(200), primary_key=True),
    Column("payer", String(500), nullable=False),
    Column("source", String(1000), nullable=False),
    Column("source_sha256", String(64), nullable=False),
    Column("orders", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: One row per order of a run. ``status``: pending, claimed (a worker holds it until ``lease_until``), retry
#: (a transient failure, claimable again from ``not_before``), waiting (submitted and pended, tracked again by
#: the next run) and done.
batch_items = Table(
    "batch_items", metadata,
    Column("run_id", String(200), nullable=False),
    Column("order_id", String(200), nullable=False),
    Column("position", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(20), nullable=False),
    Column("worker", String(200)),
    Column("claimed_at", DateTime(timezone=True)),
    Column("lease_until", DateTime(timezone=True)),
    Column("not_before", DateTime(timezone=True)),
    Column("tries", Integer, nullable=False, server_default="0"),
    Column("outcome", String(40)),
    Column("record_id", String(36)),
    Column("error_code", String(50)),
    Column("error", Text),
    Column("finished_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("run_id", "order_id", name="pk_batch_items"),
)
Index("ix_batch_items_claim", batch_items.c.run_id, batch_items.c.status, batch_items.c.position)

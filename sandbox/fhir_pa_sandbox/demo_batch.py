"""The demo's batch: synthetic orders through the whole workflow at once, as revenue-cycle staff run it.

The orders (:mod:`fhir_pa_sandbox.batch_orders`) go through CRD, DTR, PAS and tracking with bounded concurrency,
on the demo's ledger; the report files land in the demo's work folder. The demo checks what it shows: every order
settled, none in error, and each PAS request decided exactly once at the payer.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fhir_pa.batch.inputs import read_orders
from fhir_pa.batch.run_rows import rows_for_run
from fhir_pa.batch.runner import BatchRunner, BatchSettings
from fhir_pa.batch.session import CrdConnection, workflow_session
from fhir_pa.batch.summary import BatchSummary, summarize
from fhir_pa.config import PayerConfig, PollSettings
from fhir_pa.ledger.store import Ledger
from fhir_pa.workflow.core import WorkflowSettings
from fhir_pa_sandbox.batch_orders import write_sample_orders
from fhir_pa_sandbox.server import SandboxServer

ORDERS = 40


def run_batch(server: SandboxServer, payer: PayerConfig, ledger: Ledger, workdir: Path, *,
              count: int = ORDERS) -> tuple[BatchSummary, dict[str, Any]]:
    """Run ``count`` sample orders as one batch; returns the summary and what the demo checks."""
    folder = workdir if workdir.exists() else Path(tempfile.mkdtemp(prefix="fhir-pa-batch-"))
    orders = write_sample_orders(folder / "batch-orders.ndjson", count, prefix="demo-batch")
    lines = read_orders(orders)
    fast = replace(payer, poll=PollSettings(first_delay=0.5, max_delay=2.0, rate_limit=50))
    token = server.state.ehr.issue(scopes=["user/*.rs"], patient_id=None, lifetime=3600).access_token
    connection = CrdConnection(cds_base_url=f"{server.base_url}/crd/cds-services",
                               ehr_base_url=f"{server.base_url}/ehr/fhir", ehr_token=token)
    settings = BatchSettings(run_id="demo-batch", worker="demo", concurrency=8)
    before = server.stats()["by_identifier"]
    started = datetime.now(UTC)

    async def go() -> None:
        async with workflow_session(fast, ledger, settings=WorkflowSettings(worker="demo"),
                                    crd=connection) as flow:
            runner = BatchRunner(flow, ledger, settings)
            runner.start(lines, orders.name)
            await runner.run()

    asyncio.run(go())
    finished = datetime.now(UTC)
    rows = rows_for_run(ledger, settings.run_id, payer.base)
    summary = summarize(rows, now=finished, started_at=started, finished_at=finished)
    after = server.stats()["by_identifier"]
    ours = {ledger.get(row.record_id).bundle_identifier for row in rows if row.record_id}
    new = {key: counts for key, counts in after.items() if key not in before}
    checks = {"orders": len(rows), "open": ledger.runs.open_count(settings.run_id),
              "errors": sum(row.outcome == "error" for row in rows),
              "decided_once": set(new) == ours and all(c["decided"] == 1 for c in new.values()),
              "orders_file": str(orders)}
    return summary, checks

"""Two batch workers share one run on PostgreSQL: every order is claimed and done by exactly one of them."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from fhir_pa.auth.keys import SigningKey
from fhir_pa.ledger.run_schema import workflow_steps
from fhir_pa.ledger.store import Ledger
from fhir_pa_sandbox.batch_orders import write_sample_orders
from fhir_pa_sandbox.server import SandboxServer
from tests.integration.batch_checks import check_exactly_once
from tests.integration.batch_env import batch_env
from tests.integration.conftest import stats

pytestmark = pytest.mark.integration

ORDERS = int(os.environ.get("FHIR_PA_WORKER_ORDERS", "400"))


def test_two_workers_on_postgresql_share_a_run_without_doing_an_order_twice(
        sandbox: SandboxServer, client_key: SigningKey, tmp_path: Path, postgres_url: str) -> None:
    env = batch_env(sandbox, client_key, tmp_path, "batch-workers")
    orders = write_sample_orders(tmp_path / "orders.ndjson", ORDERS, prefix="workers", seed=5)
    before = stats(sandbox)
    workers = [env.start(orders, postgres_url, "-c", "8", "--worker", name, "--run", "shared",
                         log=tmp_path / f"{name}.log") for name in ("worker-a", "worker-b")]
    codes = [process.wait(timeout=600) for process in workers]
    # The first to run out of claimable orders may stop while the other still holds some (exit 3: not all done).
    assert all(code in (0, 3) for code in codes), codes
    if any(code == 3 for code in codes):
        last = env.run(orders, postgres_url, "-c", "8", "--worker", "worker-a", "--run", "shared")
        assert last.returncode == 0, last.stderr[-2000:]
    with Ledger.open(postgres_url) as ledger:
        check_exactly_once(ledger, "shared", sandbox.fhir_base, before, stats(sandbox))
        items = ledger.runs.items("shared")
        by_worker = Counter(item.worker for item in items)
        assert set(by_worker) == {"worker-a", "worker-b"} and min(by_worker.values()) > ORDERS // 10, by_worker
        with ledger.engine.connect() as conn:
            steps = conn.execute(select(workflow_steps.c.order_id, workflow_steps.c.step, workflow_steps.c.worker)
                                 .where(workflow_steps.c.step.in_(["crd", "pas"]))).all()
    per_order = Counter((order_id, step) for order_id, step, _ in steps if order_id.startswith("workers-"))
    twice = [key for key, n in per_order.items() if n > 1]
    assert not twice, f"orders worked on twice: {twice[:5]}"
    workers_of: dict[str, set[str]] = {}
    for order_id, _, worker in steps:
        workers_of.setdefault(order_id, set()).add(worker)
    assert all(len(names) == 1 for names in workers_of.values())
    assert sum(1 for key in per_order if key[1] == "crd") > ORDERS // 2

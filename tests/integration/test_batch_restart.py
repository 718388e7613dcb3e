"""kill -9 at random points of a 500-order batch, then resume: every order settled, each submitted exactly once.

The batch is a child process (``fhir-pa batch``); the sandbox payer runs here on loopback. The kill point is a
random number of settled orders (read from the run state while the batch works) plus a random few
milliseconds, so kills land mid-flight: between intent and send, during a ``$submit``, while tracking.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from fhir_pa.auth.keys import SigningKey
from fhir_pa.ledger.store import Ledger
from fhir_pa_sandbox.batch_orders import write_sample_orders
from fhir_pa_sandbox.server import SandboxServer
from tests.integration.batch_checks import check_exactly_once
from tests.integration.batch_env import batch_env
from tests.integration.conftest import stats

pytestmark = pytest.mark.integration

TRIALS = int(os.environ.get("FHIR_PA_KILL_TRIALS", "10"))
ORDERS = int(os.environ.get("FHIR_PA_KILL_ORDERS", "500"))


def _settled(state: Path) -> int:
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1) as db:
            return int(db.execute("select count(*) from batch_items where status = 'done'").fetchone()[0])
    except sqlite3.Error:
        return 0


def _run_id(state: Path) -> str:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        return str(db.execute("select id from batch_runs").fetchone()[0])


def test_kill_9_at_random_points_then_resume(sandbox: SandboxServer, client_key: SigningKey, tmp_path: Path) -> None:
    env = batch_env(sandbox, client_key, tmp_path, "batch-kill-9")
    rng = random.Random(20261201)
    kills = 0
    for trial in range(TRIALS):
        # Half the orders go through CRD (and DTR where asked) first, half straight to PAS: the full flow is proven
        # at volume by the fault and two-worker tests; here the point is the kill, and CI time.
        orders = write_sample_orders(tmp_path / f"orders-{trial}.ndjson", ORDERS, prefix=f"kill{trial}", seed=trial,
                                     crd_share=0.5)
        state = tmp_path / f"state-{trial}.sqlite"
        before = stats(sandbox)
        target = rng.randint(1, ORDERS - 1)
        log = tmp_path / f"batch-{trial}.log"
        process = env.start(orders, str(state), "-c", "16", log=log)
        deadline = time.monotonic() + 300
        while process.poll() is None and _settled(state) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.05))
        assert process.poll() is None, f"trial {trial}: the batch ended before the kill point {target}: " \
                                       + log.read_text()[-2000:]
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        kills += 1
        left = ORDERS - _settled(state)
        assert left > 0
        resumed = env.run(orders, str(state), "-c", "16", "--json")
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        with Ledger.open(state) as ledger:
            outcomes = check_exactly_once(ledger, _run_id(state), sandbox.fhir_base, before, stats(sandbox))
        assert sum(outcomes.values()) == ORDERS
        assert outcomes["approved"] and outcomes["denied"] and outcomes["no-auth-needed"], outcomes
    assert kills == TRIALS

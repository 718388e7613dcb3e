"""A 500-order batch against a misbehaving payer stays exactly-once: 10 % of calls fail with a 5xx before or after
the payer acted, some answers come too late for the client's timeout, and access tokens expire mid-run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from fhir_pa.auth.keys import SigningKey
from fhir_pa.ledger.store import Ledger
from fhir_pa_sandbox.batch_orders import write_sample_orders
from fhir_pa_sandbox.server import SandboxServer
from tests.integration.batch_checks import check_exactly_once
from tests.integration.batch_env import batch_env
from tests.integration.conftest import set_faults, stats

pytestmark = pytest.mark.integration

ORDERS = int(os.environ.get("FHIR_PA_FAULT_ORDERS", "500"))


def test_batch_with_5xx_timeouts_and_token_expiry_is_exactly_once(sandbox: SandboxServer, client_key: SigningKey,
                                                                  tmp_path: Path) -> None:
    env = batch_env(sandbox, client_key, tmp_path, "batch-faults")
    orders = write_sample_orders(tmp_path / "orders.ndjson", ORDERS, prefix="faults", seed=99)
    state = tmp_path / "state.sqlite"
    before: dict[str, Any] = dict(stats(sandbox))
    # 5 % refused before processing, 5 % answered 500 after the payer acted: 10 % 5xx. 3 % answered after the
    # client's 1 s timeout. Every 150th authenticated call expires every token.
    set_faults(sandbox, error_rate=0.05, error_after_rate=0.05, slow_rate=0.03, slow_ms=2500, seed=7,
               token_expiry_every=150)
    done = env.run(orders, str(state), "-c", "16", "--timeout", "1", "--attempts", "6", "--retry-after", "0.5",
                   "--max-tries", "5", "--json", timeout=600)
    after: dict[str, Any] = dict(stats(sandbox))
    set_faults(sandbox, reset=True)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["open"] == 0
    with Ledger.open(state) as ledger:
        runs = ledger.runs.items(summary["run"])
        assert len(runs) == ORDERS
        outcomes = check_exactly_once(ledger, summary["run"], sandbox.fhir_base, before, after, allow_errors=True)
        errors = [f"{i.order_id}: {i.error_code} {i.error}" for i in runs if i.outcome == "error"]
    faults = after["faults_injected"] - before["faults_injected"]
    assert faults > ORDERS * 0.1, f"only {faults} faults were injected"
    assert after["duplicates"] > before["duplicates"], "no answer was lost, so no resend was tested"
    assert after["token_expiries"] > before.get("token_expiries", 0)
    assert after["tokens_issued"] - before["tokens_issued"] >= 2
    assert outcomes["error"] == 0, f"orders ended in error despite retries: {outcomes}: {errors[:3]}"

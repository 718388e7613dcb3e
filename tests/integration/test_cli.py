"""The console script as a user runs it: real processes, real sandbox, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fhir_pa.config import PayerConfig
from fhir_pa.ledger.store import Ledger
from fhir_pa_sandbox.server import SandboxServer
from tests.conftest import ROOT, order_data
from tests.integration.conftest import set_faults

pytestmark = pytest.mark.integration
EXE = str(Path(sys.executable).with_name("fhir-pa"))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          check=False)


def _submit_args(payer: PayerConfig, ledger: Path) -> list[str]:
    return ["--payer", payer.fhir_base_url, "--client-id", payer.client_id, "--key", str(payer.key_path),
            "--ledger", str(ledger)]


def test_demo_json_shows_every_case(tmp_path: Path) -> None:
    proc = run("demo", "--json", "--workdir", str(tmp_path), "--batch", "24")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    rows = shown["cases"]
    batch = shown["batch"]
    assert batch["checks"]["orders"] == 24 and batch["checks"]["open"] == 0 and batch["checks"]["errors"] == 0
    assert batch["checks"]["decided_once"] and Path(batch["reports"]["html"]).exists()
    assert batch["summary"]["total"] == sum(batch["summary"]["outcomes"].values()) == 24
    assert batch["summary"]["outcomes"]["approved"] > 0
    assert {row["case"]: (row["initial_status"], row["status"], row["channel"]) for row in rows} == {
        "approved": ("approved", "approved", "submit"), "denied": ("denied", "denied", "submit"),
        "pended": ("pended", "pended", "submit"), "modified": ("modified", "modified", "submit"),
        "pended-then-approved": ("pended", "approved", "notification"),
        "pended-then-denied": ("pended", "denied", "poll-read"),
        "documented": ("approved", "approved", "submit")}
    assert all(row["ledger_state"] == row["status"] for row in rows)
    assert all(row["crd"]["answered"] and row["crd"]["pa_needed"] == "auth-needed" for row in rows), \
        "every order went through CRD first"
    ledger = Ledger.at_path(tmp_path / "ledger.sqlite")
    assert len(ledger.records()) == 7
    documented = rows[-1]["dtr"]
    assert documented["questionnaire"].endswith("home-nebulizer|1.0.0") and documented["population_errors"] == []
    assert documented["auto"] >= 1 and documented["manual"] >= 1, "the payer's CQL and the clinician both answered"
    sent = json.loads(ledger.records()[0].request_body)
    orders = [e["resource"] for e in sent["entry"] if e["resource"]["resourceType"] == "ServiceRequest"]
    assert any(ext["url"].endswith("ext-coverage-information") for ext in orders[0].get("extension", [])), \
        "the CRD coverage information travels on the order into PAS"
    assert ledger.lookup(rows[4]["order_id"]).decision_channel == "notification"
    assert any(n.outcome == "applied" for n in ledger.notifications.all()), "the receiver applied the event"


def test_submit_example_order_then_status(payer: PayerConfig, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    proc = run("submit", str(ROOT / "examples" / "order.json"), *_submit_args(payer, ledger), "--json")
    assert proc.returncode == 0, proc.stderr
    view = json.loads(proc.stdout)
    assert view["status"] == "approved" and view["sent"] is True
    assert view["items"][0]["sequence"] == 1 and view["items"][0]["review_action"] == "A1"
    again = run("submit", str(ROOT / "examples" / "order.json"), *_submit_args(payer, ledger), "--json")
    assert json.loads(again.stdout)["sent"] is False, "a decided order is never sent twice"
    status = run("status", "--ledger", str(ledger), "--json")
    rows = json.loads(status.stdout)
    assert len(rows) == 1 and rows[0]["state"] == "approved" and rows[0]["clock"] == "decided in time"


@pytest.mark.parametrize(("content", "needle"), [
    ('{"order_id": "x", "patient": ', "is not JSON"),
    (json.dumps({**order_data(), "services": []}), "services"),
])
def test_malformed_order_file_is_one_line_and_nothing_recorded(content: str, needle: str, payer: PayerConfig,
                                                               tmp_path: Path) -> None:
    order = tmp_path / "order.json"
    order.write_text(content, encoding="utf-8")
    ledger = tmp_path / "ledger.sqlite"
    proc = run("submit", str(order), *_submit_args(payer, ledger))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fhir-pa: input error:") and needle in lines[0]
    assert "Traceback" not in proc.stderr
    assert not ledger.exists() or Ledger.at_path(ledger).records() == []


@pytest.mark.parametrize("garbage", ["truncated", "not-fhir", "html"])
def test_payer_answering_non_fhir_is_one_line(garbage: str, sandbox: SandboxServer, payer: PayerConfig,
                                              tmp_path: Path) -> None:
    set_faults(sandbox, garbage_next=1, garbage=garbage)
    order = tmp_path / "order.json"
    order.write_text(json.dumps(order_data(order_id=f"garbage-{garbage}")), encoding="utf-8")
    ledger = tmp_path / "ledger.sqlite"
    proc = run("submit", str(order), *_submit_args(payer, ledger))
    assert proc.returncode == 6, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    record = Ledger.at_path(ledger).records()[0]
    assert record.state == "invalid-response"  # sent, and its answer kept: nothing claimed that did not happen

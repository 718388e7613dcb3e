"""``fhir-pa batch`` as an operator runs it: a child process against the loopback sandbox, NDJSON or CSV in,
a JSON summary and report files out, and the same command again sending nothing new.

The expected outcome of each sample order follows from its code and the sandbox rules
(:data:`fhir_pa_sandbox.batch_orders.MIX`); what the payer received is read from its counters.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from fhir_pa.auth.keys import SigningKey
from fhir_pa.batch.inputs import read_orders
from fhir_pa.ledger.store import Ledger
from fhir_pa_sandbox.batch_orders import MIX, write_sample_orders
from fhir_pa_sandbox.server import SandboxServer
from tests.integration.batch_checks import check_exactly_once
from tests.integration.batch_env import FHIR_PA, BatchEnv, batch_env
from tests.integration.conftest import stats

pytestmark = pytest.mark.integration

Json = dict[str, Any]
#: What the sandbox does with each sample code (under the default documentation policy, tracking on).
EXPECTED = {"72148": "approved", "97110": "denied", "27447": "approved", "29881": "denied", "E0601": "modified",
            "77067": "no-auth-needed", "94660": "no-auth-needed", "94640": "needs-documentation"}
PENDS = ("27447", "29881")
OUTCOME_KEYS = {"approved", "partial", "modified", "denied", "pended", "cancelled", "no-auth-needed",
                "needs-documentation", "error"}


@pytest.fixture
def env(sandbox: SandboxServer, client_key: SigningKey, tmp_path: Path) -> BatchEnv:
    return batch_env(sandbox, client_key, tmp_path, f"batch-cli-{uuid.uuid4().hex[:8]}")


def read_ndjson(path: Path) -> list[Json]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_ndjson(path: Path, lines: Iterable[Json | str]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
                    encoding="utf-8")
    return path


def code_of(line: Json) -> str:
    code: str = line["order"]["services"][0]["code"]
    return code


def expected_outcomes(lines: Iterable[Json]) -> Counter[str]:
    return Counter(EXPECTED[code_of(line)] for line in lines)


def summary_of(result: subprocess.CompletedProcess[str]) -> Json:
    data: Json = json.loads(result.stdout)
    return data


def outcomes_of(summary: Json) -> Counter[str]:
    assert set(summary["outcomes"]) == OUTCOME_KEYS
    return Counter({k: v for k, v in summary["outcomes"].items() if v})


def received(sandbox: SandboxServer) -> int:
    value = stats(sandbox)["submissions_received"]
    assert isinstance(value, int)
    return value


def report_rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "orders.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def run_id(state: Path) -> str:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        return str(db.execute("select id from batch_runs").fetchone()[0])


def ok(result: subprocess.CompletedProcess[str], code: int = 0) -> subprocess.CompletedProcess[str]:
    assert result.returncode == code, f"exit {result.returncode}: {result.stderr[-3000:]}"
    return result


# -- the main run, and the same command again --------------------------------------------------------------------


def test_batch_of_sample_orders_then_the_same_command_again(env: BatchEnv, tmp_path: Path) -> None:
    orders = write_sample_orders(tmp_path / "orders.ndjson", 40, prefix=f"cli-{uuid.uuid4().hex[:6]}", seed=3)
    lines = read_ndjson(orders)
    expected = expected_outcomes(lines)
    assert {code_of(line) for line in lines} == set(MIX), "the sample covers every sandbox outcome"
    assert any("ehr" not in line for line in lines), "some orders go straight to PAS"
    submitted = sum(n for outcome, n in expected.items() if outcome not in ("no-auth-needed", "needs-documentation"))
    state, report = tmp_path / "state.sqlite", tmp_path / "report"
    before = stats(env.sandbox)

    first = summary_of(ok(env.run(orders, str(state), "--json", "--report", str(report))))
    assert first["total"] == 40 and first["open"] == 0
    assert outcomes_of(first) == expected
    assert first["submitted"] == submitted
    assert first["error_codes"] == []
    denied = expected["denied"]
    assert first["denial_reasons"] == [{"reason": "Requested service not medically necessary (sandbox reason)",
                                        "count": denied}]
    after_first = stats(env.sandbox)
    assert after_first["submissions_received"] == before["submissions_received"] + submitted  # type: ignore[operator]
    with Ledger.open(state) as ledger:
        assert check_exactly_once(ledger, first["run"], env.sandbox.fhir_base, before, after_first) == expected

    # The report files: one CSV row per order, the JSON summary, the HTML page.
    rows = report_rows(report)
    assert [row["order_id"] for row in rows] == [line["order"]["order_id"] for line in lines]
    assert {row["order_id"]: row["outcome"] for row in rows} == {
        line["order"]["order_id"]: EXPECTED[code_of(line)] for line in lines}
    by_id = {row["order_id"]: row for row in rows}
    for line in lines:
        row = by_id[line["order"]["order_id"]]
        if row["outcome"] in ("approved", "modified", "denied"):
            assert row["record_id"] and row["state"] == row["outcome"] and row["submitted_at"], row
        if code_of(line) in PENDS:
            assert row["channel"] == "poll-read", row
        if row["outcome"] == "needs-documentation":
            assert row["documentation"] == "held" and not row["record_id"]
        if row["outcome"] == "no-auth-needed":
            assert row["pa_needed"] in ("satisfied", "no-auth") and not row["record_id"]
    document = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert document["format"] == "fhir-pa-batch-report" and len(document["orders"]) == 40
    assert document["summary"]["outcomes"] == first["outcomes"]
    html = (report / "report.html").read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html") and first["run"] in html

    # The same command again: nothing is sent, CRD is not asked again, and the totals are the same.
    again = summary_of(ok(env.run(orders, str(state), "--json", "--report", str(report))))
    after_again = stats(env.sandbox)
    assert after_again["submissions_received"] == after_first["submissions_received"]
    assert after_again["crd_hooks"] == after_first["crd_hooks"]
    assert again["run"] == first["run"] and again["open"] == 0
    assert again["outcomes"] == first["outcomes"] and again["submitted"] == first["submitted"]
    assert report_rows(report) == rows


# -- input problems ----------------------------------------------------------------------------------------------


def test_one_invalid_line_ends_as_an_input_error_and_the_others_go_on(env: BatchEnv, tmp_path: Path) -> None:
    lines = read_ndjson(write_sample_orders(tmp_path / "sample.ndjson", 6, prefix=f"bad-{uuid.uuid4().hex[:6]}",
                                            seed=3))
    broken = json.loads(json.dumps(lines[2]))
    broken["order"]["services"][0]["code"] = ""
    broken["order"]["patient"]["family"] = "Quartermaine"
    orders = write_ndjson(tmp_path / "orders.ndjson", [*lines[:2], broken, *lines[3:]])
    report = tmp_path / "report"

    summary = summary_of(ok(env.run(orders, str(tmp_path / "state.sqlite"), "--json", "--report", str(report))))
    assert summary["open"] == 0 and summary["total"] == 6
    assert outcomes_of(summary) == expected_outcomes([*lines[:2], *lines[3:]]) + Counter({"error": 1})
    assert summary["error_codes"] == [{"code": "input", "count": 1}]
    row = next(r for r in report_rows(report) if r["order_id"] == broken["order"]["order_id"])
    assert row["outcome"] == "error" and row["error_code"] == "input" and not row["record_id"]
    assert "order.services[0].code" in row["error"] and "Quartermaine" not in row["error"]


def test_a_line_that_is_not_json_ends_as_an_input_error(env: BatchEnv, tmp_path: Path) -> None:
    [good] = read_ndjson(write_sample_orders(tmp_path / "sample.ndjson", 1, prefix=f"nj-{uuid.uuid4().hex[:6]}",
                                             seed=3))
    orders = write_ndjson(tmp_path / "orders.ndjson", [good, '{"order": {"order_id": "x", "patient": {'])
    summary = summary_of(ok(env.run(orders, str(tmp_path / "state.sqlite"), "--json")))
    assert summary["error_codes"] == [{"code": "input", "count": 1}]


def _flatten(value: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(inner, f"{prefix}{key}.", out)
    elif isinstance(value, list):
        for n, inner in enumerate(value):
            _flatten(inner, f"{prefix}{n}.", out)
    else:
        out[prefix.rstrip(".")] = str(value)


def test_csv_input_with_dotted_columns(env: BatchEnv, tmp_path: Path) -> None:
    lines = read_ndjson(write_sample_orders(tmp_path / "sample.ndjson", 8, prefix=f"csv-{uuid.uuid4().hex[:6]}",
                                            seed=3))
    rows: list[dict[str, str]] = []
    for line in lines:
        flat: dict[str, str] = {}
        _flatten({**line["order"], **({"ehr": line["ehr"]} if "ehr" in line else {})}, "", flat)
        rows.append(flat)
    columns = list(dict.fromkeys(column for row in rows for column in row))
    assert {"patient.given.0", "services.0.code", "ehr.patient_id"} <= set(columns)
    orders = tmp_path / "orders.csv"
    with orders.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    parsed = read_orders(orders)
    assert all(line.order is not None for line in parsed), [line.error for line in parsed if line.error]

    summary = summary_of(ok(env.run(orders, str(tmp_path / "state.sqlite"), "--json")))
    assert summary["total"] == 8 and summary["open"] == 0
    assert outcomes_of(summary) == expected_outcomes(lines)
    with Ledger.open(tmp_path / "state.sqlite") as ledger:
        crd_asked = {s.order_id for line in lines for s in ledger.steps.for_order(
            payer=env.sandbox.fhir_base, order_id=line["order"]["order_id"]) if s.step == "crd"}
    assert crd_asked == {line["order"]["order_id"] for line in lines if "ehr" in line}


def test_documentation_hold_policy(env: BatchEnv, tmp_path: Path) -> None:
    sample = read_ndjson(write_sample_orders(tmp_path / "sample.ndjson", 40, prefix=f"hold-{uuid.uuid4().hex[:6]}",
                                             seed=3))
    lines = [line for code in ("94640", "72148") for line in [s for s in sample if code_of(s) == code][:2]]
    assert [code_of(line) for line in lines] == ["94640", "94640", "72148", "72148"]
    orders = write_ndjson(tmp_path / "orders.ndjson", lines)
    state, report = tmp_path / "state.sqlite", tmp_path / "report"
    summary = summary_of(ok(env.run(orders, str(state), "--json", "--documentation", "hold", "--report",
                                    str(report))))
    assert outcomes_of(summary) == expected_outcomes(lines)
    held = {line["order"]["order_id"] for line in lines if code_of(line) == "94640"}
    assert {r["order_id"] for r in report_rows(report) if r["documentation"] == "held"} == held
    with Ledger.open(state) as ledger:
        for order_id in held:
            hold = ledger.steps.latest(payer=env.sandbox.fhir_base, order_id=order_id, step="hold")
            assert hold is not None and hold.body is not None
            assert json.loads(hold.body)[0]["response"]["resourceType"] == "QuestionnaireResponse"
            assert ledger.find(payer=env.sandbox.fhir_base, order_id=order_id) is None
    bad = env.run(orders, str(tmp_path / "other.sqlite"), "--documentation", "later")
    assert bad.returncode != 0 and "--documentation" in bad.stderr


# -- tracking off, then on ---------------------------------------------------------------------------------------


def _pend_mix(tmp_path: Path, prefix: str) -> list[Json]:
    lines = read_ndjson(write_sample_orders(tmp_path / "sample.ndjson", 40, prefix=prefix, seed=3))
    picked = [next(line for line in lines if code_of(line) == code) for code in ("27447", "29881", "72148")]
    return picked


def _max_tries(state: Path) -> int:
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1) as db:
            return int(db.execute("select coalesce(max(tries), 0) from batch_items").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_no_track_leaves_pended_orders_pended_and_exits_3(env: BatchEnv, tmp_path: Path) -> None:
    orders = write_ndjson(tmp_path / "orders.ndjson", _pend_mix(tmp_path, f"nt-{uuid.uuid4().hex[:6]}"))
    state = tmp_path / "state.sqlite"
    process = env.start(orders, str(state), "--json", "--no-track", log=tmp_path / "batch.log")
    deadline = time.monotonic() + 15
    try:
        while process.poll() is None and time.monotonic() < deadline:
            assert _max_tries(state) <= 1, "an order was claimed again in the same run"
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert process.returncode == 3


def _submitted(state: Path, lines: list[Json], pended: set[str]) -> bool:
    """The no-track run got every answer: the others settled, the pended ones recorded as pended."""
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1) as db:
            done = {r[0] for r in db.execute("select order_id from batch_items where status = 'done'")}
            states = dict(db.execute("select order_id, state from requests").fetchall())
    except sqlite3.Error:
        return False
    return done == {line["order"]["order_id"] for line in lines} - pended and all(
        states.get(order_id) == "pended" for order_id in pended)


def test_a_run_with_tracking_finishes_orders_a_no_track_run_left_pended(env: BatchEnv, tmp_path: Path) -> None:
    lines = _pend_mix(tmp_path, f"tr-{uuid.uuid4().hex[:6]}")
    orders = write_ndjson(tmp_path / "orders.ndjson", lines)
    state = tmp_path / "state.sqlite"
    pended = {line["order"]["order_id"] for line in lines if code_of(line) in PENDS}
    before = received(env.sandbox)

    # --no-track: submit everything, follow nothing; the run ends with the pended orders open (exit 3).
    first = env.run(orders, str(state), "--no-track", timeout=60)
    assert first.returncode == 3, first.stderr[-2000:]
    assert _submitted(state, lines, pended)
    assert received(env.sandbox) == before + len(lines)
    with Ledger.open(state) as ledger:
        states = {r.order_id: r.state for r in ledger.records() if r.order_id in pended}
        assert states == dict.fromkeys(pended, "pended")
        assert ledger.runs.open_count(run_id(state)) == len(pended)

    # A later run with tracking follows them to the payer's final decision, resending nothing.
    summary = summary_of(ok(env.run(orders, str(state), "--json")))
    assert summary["open"] == 0 and outcomes_of(summary) == expected_outcomes(lines)
    assert received(env.sandbox) == before + len(lines)
    with Ledger.open(state) as ledger:
        assert {r.order_id: r.state for r in ledger.records() if r.order_id in pended} == {
            line["order"]["order_id"]: EXPECTED[code_of(line)] for line in lines if code_of(line) in PENDS}


# -- synthetic input ---------------------------------------------------------------------------------------------


def test_sandbox_orders_writes_the_requested_number_of_lines(tmp_path: Path) -> None:
    def generate(name: str, *extra: str) -> Path:
        out = tmp_path / name
        result = subprocess.run([*FHIR_PA, "sandbox-orders", str(out), *extra], capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"wrote {extra[extra.index('-n') + 1]} orders" in result.stdout
        return out

    out = generate("gen.ndjson", "-n", "25", "--prefix", "gen", "--seed", "7")
    parsed = read_orders(out)
    assert len(out.read_text(encoding="utf-8").splitlines()) == 25 and len(parsed) == 25
    assert [line.order_id for line in parsed] == [f"gen-{n:06d}" for n in range(25)]
    assert all(line.order is not None and line.error is None for line in parsed)
    assert len({line.order.order.services[0].code for line in parsed if line.order}) > 3, "a mix of outcomes"
    assert generate("same.ndjson", "-n", "25", "--prefix", "gen", "--seed", "7").read_bytes() == out.read_bytes()

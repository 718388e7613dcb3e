"""The batch runner alone, with a scripted workflow: concurrency bound, retries, tracking, and bugs settled."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from fhir_pa.batch.inputs import InputLine, parse_line
from fhir_pa.batch.runner import BatchRunner, BatchSettings, Progress
from fhir_pa.ledger.store import Ledger
from fhir_pa.workflow.model import WorkflowOrder
from fhir_pa.workflow.result import WorkflowResult
from fhir_pa.workflow.run import AsyncWorkflow
from tests.conftest import order_data


@dataclass
class _Payer:
    base: str = "https://payer.test/fhir"


@dataclass
class _Pas:
    payer: _Payer


class ScriptedWorkflow:
    """Answers per order id: ``approved``, ``flaky`` (a transient error, then approved), ``bug`` (raises),
    ``pended`` (approved once followed), ``refused`` (a non-transient error)."""

    def __init__(self) -> None:
        self.pas = _Pas(_Payer())
        self.calls: dict[str, int] = {}
        self.running = 0
        self.most_running = 0
        self.followed: list[str] = []

    async def run(self, item: WorkflowOrder, *, track: bool | None = None) -> WorkflowResult:
        order_id = item.order_id
        self.calls[order_id] = self.calls.get(order_id, 0) + 1
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0.01)
        finally:
            self.running -= 1
        kind = order_id.split("-")[0]
        if kind == "bug":
            raise RuntimeError("patient Jane Doe broke it")  # the message must never reach the ledger
        if kind == "net" and self.calls[order_id] == 1:
            raise httpx.ReadError("connection reset")  # an untyped network failure: retried, not settled
        if kind == "flaky" and self.calls[order_id] == 1:
            return WorkflowResult(order_id, "error", error_code="unavailable", error="payer down", transient=True)
        if kind == "refused":
            return WorkflowResult(order_id, "error", error_code="rejected", error="HTTP 400")
        if kind == "pended":
            return WorkflowResult(order_id, "pended", record=cast(Any, _Record()))
        return WorkflowResult(order_id, "approved")

    async def follow(self, result: WorkflowResult) -> WorkflowResult:
        self.followed.append(result.order_id)
        await asyncio.sleep(0.05)
        return WorkflowResult(result.order_id, "approved")


@dataclass
class _Record:
    id: str = "rec"


def _lines(ids: list[str]) -> list[InputLine]:
    return [parse_line({"order": order_data(order_id=order_id)}, n + 1, "test") for n, order_id in enumerate(ids)]


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.at_path(tmp_path / "state.sqlite")


def test_runner_bounds_concurrency_retries_tracks_and_settles_bugs(ledger: Ledger) -> None:
    ids = [f"approved-{n}" for n in range(12)] + ["flaky-1", "bug-1", "pended-1", "refused-1", "net-1"]
    flow = ScriptedWorkflow()
    seen: list[Progress] = []
    runner = BatchRunner(cast(AsyncWorkflow, flow), ledger,
                         BatchSettings(run_id="r", worker="w", concurrency=3, retry_after=0.05, max_tries=3),
                         on_progress=seen.append)
    runner.start(_lines(ids), "orders.ndjson")
    totals = asyncio.run(runner.run())
    assert flow.most_running <= 3
    items = {item.order_id: item for item in ledger.runs.items("r")}
    assert all(item.status == "done" for item in items.values())
    assert items["flaky-1"].outcome == "approved" and items["flaky-1"].tries == 2 and flow.calls["flaky-1"] == 2
    assert items["pended-1"].outcome == "approved" and flow.followed == ["pended-1"]
    assert items["refused-1"].outcome == "error" and items["refused-1"].error_code == "rejected"
    bug = items["bug-1"]
    assert bug.outcome == "error" and bug.error_code == "internal" and "Jane" not in (bug.error or "")
    assert items["net-1"].outcome == "approved" and flow.calls["net-1"] == 2
    assert totals.settled == len(ids) and totals.retried == 2
    assert {p.order_id for p in seen if p.status == "done"} == set(ids)


def test_an_invalid_input_line_is_settled_as_an_input_error_without_running(ledger: Ledger) -> None:
    bad = parse_line({"order": {**order_data(order_id="bad-1"), "services": []}}, 1, "test")
    assert bad.order is None
    flow = ScriptedWorkflow()
    runner = BatchRunner(cast(AsyncWorkflow, flow), ledger, BatchSettings(run_id="r", worker="w"))
    runner.start([bad, *_lines(["approved-1"])], "orders.ndjson")
    asyncio.run(runner.run())
    item = next(i for i in ledger.runs.items("r") if i.order_id == "bad-1")
    assert item.outcome == "error" and item.error_code == "input" and "services" in (item.error or "")
    assert "bad-1" not in flow.calls
    assert json.loads(ledger.runs.body("r", "bad-1"))["order"]["order_id"] == "bad-1"  # the input is kept as given

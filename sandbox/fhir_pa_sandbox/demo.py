"""``fhir-pa demo``: the main job end to end against the embedded sandbox payer.

Starts the sandbox on a free loopback port, makes a key pair and registers the client. Each order first goes to
the payer's CRD service (order-sign, prefetch from the sandbox EHR, signed client JWT), whose coverage information
then travels on the order into PAS; each is submitted through the real client (SMART token, checks, ``$submit``,
ledger) and the decisions are printed. Then two
pended requests are followed to their final decision: one by Subscription notification (a receiver on
loopback), one by polling (:mod:`fhir_pa_sandbox.demo_tracking`); and one order needing documentation goes
through DTR (package, prepopulation by the payer's CQL, a clinician's answers) into PAS
(:mod:`fhir_pa_sandbox.demo_dtr`). Exits non-zero if any case does not end as
the sandbox rules say it must, or reaches its final answer through another channel than expected.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fhir_pa.auth.keys import generate_key, public_jwks, write_key_pair
from fhir_pa.batch.report_files import write_reports
from fhir_pa.batch.run_rows import rows_for_run
from fhir_pa.batch.summary import print_summary
from fhir_pa.config import PAS_SCOPES, SUBSCRIPTION_SCOPES, PayerConfig
from fhir_pa.ledger.store import Ledger
from fhir_pa.pas.submit import PasClient
from fhir_pa_sandbox.config import SandboxConfig
from fhir_pa_sandbox.demo_batch import run_batch
from fhir_pa_sandbox.demo_crd import crd_step
from fhir_pa_sandbox.demo_dtr import run_documented
from fhir_pa_sandbox.demo_orders import CASES, demo_order
from fhir_pa_sandbox.demo_tracking import run_tracked
from fhir_pa_sandbox.server import SandboxServer

DEMO_CLIENT = "fhir-pa-demo"


def run_demo(workdir: Path, *, cases: list[str] | None = None, track: bool = True,
             batch: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Run the demo cases in ``workdir`` (keys and ledger go there); one result row per case.

    ``track`` adds the :data:`~fhir_pa_sandbox.demo_tracking.TRACKED` cases, followed to a final decision, and
    the documented case (CRD asks for documentation; DTR fills the payer's form; it goes with the PAS request).
    ``batch`` orders then run as one batch (:mod:`fhir_pa_sandbox.demo_batch`) on their own ledger, with reports.
    """
    key = generate_key("ES384")
    private_path, _ = write_key_pair(key, workdir / "keys")
    rows: list[dict[str, Any]] = []
    batch_result: dict[str, Any] | None = None
    with SandboxServer(SandboxConfig()) as server:
        server.register_client(DEMO_CLIENT, public_jwks(key), [*PAS_SCOPES, *SUBSCRIPTION_SCOPES])
        payer = PayerConfig(fhir_base_url=server.fhir_base, client_id=DEMO_CLIENT, key_path=private_path)
        ledger = Ledger.at_path(workdir / "ledger.sqlite")
        crd = crd_step(server, key, DEMO_CLIENT)
        try:
            with PasClient(payer, ledger=ledger) as client:
                for case in cases or list(CASES):
                    order, coverage = crd.check(demo_order(case))
                    result = client.submit(order)
                    decision = result.decision
                    rows.append({
                        "case": case,
                        "crd": coverage,
                        "status": decision.status.value,
                        "initial_status": decision.status.value,
                        "channel": "submit",
                        "expected": CASES[case][2],
                        "expected_channel": "submit",
                        "order_id": result.order_id,
                        "record_id": result.record_id,
                        "preauth_ref": decision.preauth_ref,
                        "items": [{"sequence": i.sequence, "review_action": i.review_action,
                                   "status": i.status.value, "auth_number": i.auth_number}
                                  for i in decision.items],
                        "ledger_state": ledger.get(result.record_id).state,
                    })
            if track:
                rows.extend(run_tracked(payer, ledger, first_index=len(rows), crd=crd))
                rows.append(run_documented(server, payer, ledger, crd, len(rows)))
            if batch:
                batch_result = _batch(server, payer, workdir, batch)
        finally:
            crd.client.close()
            ledger.close()
    return rows, batch_result


def _batch(server: SandboxServer, payer: PayerConfig, workdir: Path, count: int) -> dict[str, Any]:
    with Ledger.at_path(workdir / "batch-state.sqlite") as state:
        summary, checks = run_batch(server, payer, state, workdir, count=count)
        rows = rows_for_run(state, "demo-batch", payer.base)
    reports = write_reports(rows, summary, workdir / "batch-report", title="fhir-pa demo batch")
    return {"summary": summary, "checks": checks, "reports": {k: str(v) for k, v in reports.items()}}


def demo(
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as a JSON list.")] = False,
    workdir: Annotated[Path | None, typer.Option("--workdir", help="Keep keys and ledger here.")] = None,
    batch: Annotated[int, typer.Option("--batch", min=0, max=100_000,
                                       help="Then run this many synthetic orders as one batch (0: none).")] = 40,
) -> None:
    """Run the main job against the embedded sandbox payer: four decisions, then two pended requests tracked."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="fhir-pa-demo-") as tmp:
            rows, batch_result = run_demo(Path(tmp), batch=batch)
    else:
        workdir.mkdir(parents=True, exist_ok=True)
        rows, batch_result = run_demo(workdir, batch=batch)
    if as_json:
        typer.echo(json.dumps({"cases": rows, "batch": None if batch_result is None else {
            "summary": batch_result["summary"].as_dict(), "checks": batch_result["checks"],
            "reports": batch_result["reports"]}}, indent=2, default=str))
    else:
        table = Table("case", "CRD", "DTR", "first answer", "final", "via", "preauth", "items", "ledger",
                      title="fhir-pa demo: sandbox payer decisions (CRD, DTR, PAS)")
        for row in rows:
            items = ", ".join(f"{i['sequence']}:{i['review_action']}" for i in row["items"])
            crd_view = row.get("crd") or {}
            dtr = row.get("dtr")
            documented = f"{dtr['auto']} auto, {dtr['manual']} manual" if dtr else "-"
            table.add_row(row["case"], str(crd_view.get("pa_needed") or "-"), documented, row["initial_status"],
                          row["status"], row["channel"] or "-", row["preauth_ref"] or "-", items, row["ledger_state"])
        console = Console(width=max(Console().width, 150))
        console.print(table)
        if batch_result is not None:
            console.print(f"\n[bold]fhir-pa demo: a batch of {batch_result['checks']['orders']} orders "
                          "(CRD, DTR, PAS, tracking; 8 at a time)[/bold]")
            print_summary(console, batch_result["summary"])
            where = batch_result["reports"]
            console.print(f"reports: {where['html']} (also {Path(where['csv']).name}, {Path(where['json']).name})"
                          if workdir is not None else "reports: pass --workdir DIR to keep them")
    wrong = [row["case"] for row in rows
             if row["status"] != row["expected"] or row["channel"] != row["expected_channel"]
             or (row.get("crd") or {}).get("pa_needed") != "auth-needed"
             or ("dtr" in row and (not row["dtr"]["auto"] or row["dtr"]["population_errors"]))]
    if batch_result is not None:
        checks = batch_result["checks"]
        if checks["open"] or checks["errors"] or not checks["decided_once"]:
            wrong.append(f"batch ({checks['open']} open, {checks['errors']} errors, "
                         f"decided once: {checks['decided_once']})")
    if wrong:
        typer.echo(f"fhir-pa: demo cases ended unexpectedly: {', '.join(wrong)}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)

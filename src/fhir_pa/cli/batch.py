"""``fhir-pa batch``: many orders through CRD, DTR, PAS and tracking, resumable, with a report.

Run it again with the same ``--state`` after any stop (Ctrl-C, a crash, ``kill -9``): the run continues where it
was, and no order is submitted twice. Several workers share a run when ``--state`` is one PostgreSQL database
and each worker has its own ``--worker`` name.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fhir_pa.batch.inputs import read_orders
from fhir_pa.batch.run_rows import rows_for_run
from fhir_pa.batch.runner import BatchRunner, BatchSettings, default_worker
from fhir_pa.batch.runner import Progress as Settled
from fhir_pa.batch.session import CrdConnection, workflow_session
from fhir_pa.cli.options import ClientId, KeyFile, PayerUrl, Scopes, TokenEndpoint, open_ledger, payer_config
from fhir_pa.config import PollSettings
from fhir_pa.errors import ConfigurationError
from fhir_pa.fhir.retry import RetryPolicy
from fhir_pa.workflow.core import WorkflowSettings


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)


def _run_name(orders: Path) -> str:
    digest = hashlib.sha256(orders.read_bytes()).hexdigest()[:12]
    return f"{orders.stem}-{digest}"


def batch(
    orders: Annotated[Path, typer.Argument(help="Orders: NDJSON (one order per line) or .csv (dotted columns).")],
    payer: PayerUrl,
    client_id: ClientId,
    key: KeyFile,
    state: Annotated[str, typer.Option("--state", envvar="FHIR_PA_STATE",
                                       help="Run state and ledger: a SQLite file, or a PostgreSQL URL "
                                            "(postgresql+psycopg://...) shared by several workers.")],
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, max=256,
                                             help="Orders in CRD/DTR/PAS at once.")] = 8,
    rate: Annotated[float, typer.Option("--rate", min=0, help="Orders started per second (0: no limit).")] = 0.0,
    crd: Annotated[str | None, typer.Option("--crd", help="Payer CDS Hooks base URL (…/cds-services); "
                                                          "with --ehr, orders with an 'ehr' part go through CRD.")
                   ] = None,
    ehr: Annotated[str | None, typer.Option("--ehr", help="EHR FHIR base URL (prefetch and the DTR chart).")] = None,
    ehr_token: Annotated[str | None, typer.Option("--ehr-token", envvar="FHIR_PA_EHR_TOKEN",
                                                  help="Bearer token for the EHR FHIR API.")] = None,
    crd_issuer: Annotated[str | None, typer.Option("--crd-issuer", help="Our iss for CDS Hooks JWTs "
                                                                        "(default: --client-id).")] = None,
    dtr: Annotated[bool, typer.Option("--dtr/--no-dtr", help="Fetch and fill the payer's forms when CRD asks "
                                                             "for documentation.")] = True,
    documentation: Annotated[str, typer.Option(
        "--documentation", help="complete: submit orders whose forms the chart completed, hold the rest; "
                                "hold: hold every order that needs documentation.")] = "complete",
    track: Annotated[bool, typer.Option("--track/--no-track", help="Follow pended requests to a final "
                                                                   "decision.")] = True,
    track_timeout: Annotated[float | None, typer.Option("--track-timeout", min=0,
                                                        help="Stop following a pended request after this many "
                                                             "seconds (a later run goes on).")] = None,
    poll_first: Annotated[float, typer.Option("--poll-first", min=0, help="Seconds before the first poll of a "
                                                                          "pended request.")] = 30.0,
    poll_max: Annotated[float, typer.Option("--poll-max", min=0, help="Longest wait between polls.")] = 3600.0,
    poll_rate: Annotated[float, typer.Option("--poll-rate", min=0, help="Polls per second to this payer.")] = 1.0,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds for one HTTP exchange.")] = 20.0,
    attempts: Annotated[int, typer.Option("--attempts", min=1, max=20, help="Sends of one request before it "
                                                                            "counts as failed.")] = 4,
    run: Annotated[str | None, typer.Option("--run", help="Run name (default: file name + content hash, so the "
                                                          "same file resumes the same run).")] = None,
    worker: Annotated[str | None, typer.Option("--worker", help="This worker's name (default: the host name); "
                                                                "give each worker on one host its own.")] = None,
    lease: Annotated[float, typer.Option("--lease", min=1, help="Seconds a claimed order stays ours without "
                                                                "renewal.")] = 120.0,
    retry_after: Annotated[float, typer.Option("--retry-after", min=0, help="Seconds before an order that failed "
                                                                            "on a payer outage is tried again.")
                           ] = 30.0,
    max_tries: Annotated[int, typer.Option("--max-tries", min=1, max=100, help="Tries of one order before it is "
                                                                               "settled as an error.")] = 3,
    report: Annotated[Path | None, typer.Option("--report", help="Write orders.csv, summary.json and "
                                                                 "report.html here.")] = None,
    token_endpoint: TokenEndpoint = None,
    scope: Scopes = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Submit many orders: CRD, DTR, PAS and tracking per order, resumable, with a summary and reports."""
    if documentation not in ("complete", "hold"):
        raise ConfigurationError("--documentation is 'complete' or 'hold'", path="--documentation")
    if (crd is None) != (ehr is None):
        raise ConfigurationError("--crd and --ehr go together (CRD reads the chart from the EHR)", path="--crd")
    lines = read_orders(orders, keep=False)
    policy: Literal["complete", "hold"] = "complete" if documentation == "complete" else "hold"
    config = payer_config(payer, client_id, key, token_endpoint, scope)
    config = replace(config, timeout=timeout, retry=RetryPolicy(attempts=attempts),
                     poll=PollSettings(first_delay=poll_first, max_delay=poll_max, rate_limit=poll_rate))
    settings = BatchSettings(run_id=run or _run_name(orders), worker=worker or default_worker(),
                             concurrency=concurrency, rate=rate, lease=lease, track=track,
                             retry_after=retry_after, max_tries=max_tries)
    flow_settings = WorkflowSettings(documentation=policy, track=track, track_timeout=track_timeout,
                                     worker=settings.worker)
    connection = CrdConnection(cds_base_url=crd, ehr_base_url=ehr, issuer=crd_issuer, ehr_token=ehr_token) \
        if crd is not None and ehr is not None else None
    ledger = open_ledger(state)
    console = Console(stderr=True)
    started_at = datetime.now(UTC)
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=console,
                      disable=not progress, transient=False) as bar:
            async def go() -> None:
                async with workflow_session(config, ledger, settings=flow_settings, crd=connection, dtr=dtr,
                                            connections=max(16, concurrency * 2)) as flow:
                    runner = BatchRunner(flow, ledger, settings)
                    runner.start(lines, orders.name)
                    total = len(lines)
                    done = total - ledger.runs.open_count(settings.run_id)
                    task = bar.add_task(settings.run_id, total=total, completed=done, last="")

                    def settled(event: Settled) -> None:
                        if event.status == "done":
                            bar.advance(task)
                        bar.update(task, last=f"{event.order_id}: {event.outcome}")

                    runner.on_progress = settled
                    await runner.run()

            asyncio.run(go())
        finished_at = datetime.now(UTC)
        rows = rows_for_run(ledger, settings.run_id, config.base)
        open_orders = ledger.runs.open_count(settings.run_id)
    finally:
        ledger.close()
    from fhir_pa.batch.summary import print_summary, summarize

    summary = summarize(rows, now=finished_at, started_at=started_at, finished_at=finished_at)
    if report is not None:
        from fhir_pa.batch.report_files import write_reports

        written = write_reports(rows, summary, report, title=f"fhir-pa batch {settings.run_id}")
        console.print("reports: " + ", ".join(str(p) for p in written.values()))
    if as_json:
        typer.echo(json.dumps({"run": settings.run_id, "worker": settings.worker, "open": open_orders,
                               **summary.as_dict()}, indent=2, default=str))
    else:
        print_summary(Console(), summary)
    if open_orders:
        console.print(f"{open_orders} order(s) of run {settings.run_id} are not done yet "
                      "(pended, to retry, or held by another worker): run the same command again to go on")
        raise typer.Exit(3)

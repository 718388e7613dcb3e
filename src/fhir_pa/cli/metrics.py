"""``fhir-pa metrics`` (prior-auth figures from the ledger) and ``fhir-pa mips`` (the MIPS evidence report).

Both only read the ledger. A ledger file that does not exist is an error here, not a fresh empty ledger: a typo
in ``--ledger`` must not print a report of nothing that looks like a real one.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fhir_pa.cli import errors as cli_errors
from fhir_pa.cli.options import DEFAULT_LEDGER, JsonFlag, LedgerPath, open_ledger
from fhir_pa.errors import InputError, LedgerError
from fhir_pa.ledger.clock import ClockCounts, format_seconds
from fhir_pa.ledger.store import Ledger
from fhir_pa.metrics.durations import DurationStats
from fhir_pa.metrics.mips import FIRST_YEAR, MipsReport, mips_as_json, mips_report
from fhir_pa.metrics.mips_csv import write_evidence_csv, write_summary_csv
from fhir_pa.metrics.prior_auth import PriorAuthMetrics, metrics_as_json, prior_auth_metrics

PayerFilter = Annotated[str | None, typer.Option(
    "--payer", help="Only requests sent to this payer (FHIR base URL). Not read from FHIR_PA_PAYER: a filter "
                    "should never apply unasked.")]
Since = Annotated[str | None, typer.Option(
    "--since", help="Only requests the payer received on or after this date (YYYY-MM-DD, UTC) or ISO date-time.")]
Until = Annotated[str | None, typer.Option(
    "--until", help="Only requests the payer received up to the end of this date (YYYY-MM-DD, UTC), or before "
                    "this ISO date-time.")]
Year = Annotated[int, typer.Option("--year", help="Performance year (calendar year, UTC).")]
CsvFile = Annotated[Path | None, typer.Option("--csv", help="Also write the report as CSV, one line per NPI/TIN.")]
EvidenceCsv = Annotated[Path | None, typer.Option("--evidence-csv",
                                                  help="Also write one CSV line per counted request.")]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def register(app: typer.Typer) -> None:
    app.command("metrics")(metrics)
    app.command("mips")(mips)


def parse_when(text: str, option: str, *, end: bool = False) -> datetime:
    """A date (midnight UTC; with ``end``, the midnight after it, so the day is included) or an ISO date-time
    (naive means UTC)."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1 if end else 0), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{option} wants a date (YYYY-MM-DD) or an ISO date-time, got {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def open_existing(location: Path | str) -> Ledger:
    """The ledger at ``location`` (a database URL, or a SQLite path that must already exist)."""
    text = str(location)
    if not _URL.match(text) and not Path(text).exists():
        raise LedgerError(f"no ledger at {text}")
    return open_ledger(location)


#: Durations as ``250 ms``, ``4.2 s``, ``12.5 min``, ``3.0 h``, ``2.4 d`` (the batch summary's form too).
human = format_seconds


def _timing_row(name: str, stats: DurationStats) -> list[str | Text]:
    return [Text(name), str(stats.count), *(human(v) for v in (stats.p50, stats.p90, stats.p95, stats.p99, stats.max,
                                                          stats.mean))]


def _clock_row(name: str, clock: ClockCounts) -> list[str | Text]:
    return [Text(name), *(str(n) for n in (clock.on_time, clock.late, clock.open, clock.overdue, clock.not_started))]


def print_metrics(result: PriorAuthMetrics, console: Console) -> None:
    scope = [f"payer {result.payer}" if result.payer else "all payers"]
    if result.since or result.until:
        scope.append(f"received {result.since.isoformat() if result.since else '...'} to "
                     f"{result.until.isoformat() if result.until else '...'}")
    console.print(Text(f"{result.cases} prior authorizations ({', '.join(scope)}), "
                       f"as of {result.as_of.isoformat(timespec='seconds')}"))
    states = Table("state", "cases", title="By state")
    for state, count in result.by_state.items():
        states.add_row(Text(state), str(count))
    console.print(states)
    timing = Table("urgency", "decided", "p50", "p90", "p95", "p99", "max", "mean", title="Time to decision")
    for u in result.by_urgency:
        timing.add_row(*_timing_row(u.urgency, u.decision_time))
    timing.add_row(*_timing_row("all", result.decision_time))
    console.print(timing)
    clock = Table("urgency", "on time", "late", "open", "overdue", "not sent", title="CMS decision clock")
    for u in result.by_urgency:
        clock.add_row(*_clock_row(u.urgency, u.clock))
    clock.add_row(*_clock_row("all", result.clock))
    console.print(clock)
    rate = f"{result.approval_rate:.1%}" if result.approval_rate is not None else "-"
    console.print(f"approvals {result.approvals} (approved, partial, modified), denials {result.denials}, "
                  f"approval rate {rate}")
    if result.denial_reasons:
        reasons = Table("denial reason", "cases", title="Denial reasons")
        for reason in result.denial_reasons:
            reasons.add_row(Text(reason.reason), str(reason.count))
        console.print(reasons)


def metrics(ledger: LedgerPath = DEFAULT_LEDGER, payer: PayerFilter = None, since: Since = None,
            until: Until = None, as_json: JsonFlag = False) -> None:
    """Prior-auth metrics from the ledger: states, time to decision, approvals, denial reasons, CMS clocks."""
    start = parse_when(since, "--since") if since else None
    stop = parse_when(until, "--until", end=True) if until else None
    if start and stop and stop <= start:
        raise InputError("--until is not after --since")
    store = open_existing(ledger)
    try:
        result = prior_auth_metrics(store, payer=payer, since=start, until=stop)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(metrics_as_json(result), indent=2))
        return
    print_metrics(result, Console())


def print_mips(report: MipsReport, console: Console) -> None:
    table = Table("NPI", "TIN", "attest", "requests", "first", "last", "payers", "drug only", "not sent",
                  title=f"MIPS Electronic Prior Authorization, {report.year}")
    for row in report.rows:
        table.add_row(Text(row.npi or "-"), Text(row.tin or "-"), row.attestation, str(row.requests),
                      row.first_request.isoformat() if row.first_request else "-",
                      row.last_request.isoformat() if row.last_request else "-", Text("\n".join(row.payers) or "-"),
                      str(row.drug_only), str(row.not_delivered))
    console.print(table)


def _write_csv(path: Path, report: MipsReport, *, evidence: bool) -> None:
    try:
        with path.open("w", encoding="utf-8", newline="") as out:
            (write_evidence_csv if evidence else write_summary_csv)(report, out)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None


def mips(year: Year, ledger: LedgerPath = DEFAULT_LEDGER, csv_file: CsvFile = None,
         evidence_csv: EvidenceCsv = None, as_json: JsonFlag = False) -> None:
    """The MIPS "Electronic Prior Authorization" evidence: per clinician NPI and TIN, the PAS requests sent."""
    if year < FIRST_YEAR:
        cli_errors.warn(f"the measure is attested from performance year {FIRST_YEAR}; reporting {year} anyway")
    store = open_existing(ledger)
    try:
        report = mips_report(store, year)
    finally:
        store.close()
    if csv_file is not None:
        _write_csv(csv_file, report, evidence=False)
    if evidence_csv is not None:
        _write_csv(evidence_csv, report, evidence=True)
    if as_json:
        typer.echo(json.dumps(mips_as_json(report), indent=2))
        return
    print_mips(report, Console())

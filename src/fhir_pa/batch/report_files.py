"""The report files of a batch run: ``orders.csv`` (one row per order), ``summary.json`` and ``report.html``.

Files are written whole or not at all (a temporary file beside the target, then a rename), so a run stopped
half-way never leaves a truncated report behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fhir_pa.batch.rows import OUTCOMES, BatchRow
from fhir_pa.batch.summary import URGENCIES, BatchSummary
from fhir_pa.errors import InputError
from fhir_pa.spreadsheet import safe_cell

#: The columns of ``orders.csv``, in order.
CSV_COLUMNS: tuple[str, ...] = (
    "order_id", "outcome", "urgency", "state", "record_id", "preauth_ref",
    "submitted_at", "decided_at", "deadline_at", "decision_seconds", "clock",
    "channel", "pa_needed", "documentation", "denial_reasons", "error_code", "error", "worker", "attempts",
)
#: Joins the denial reasons of one order in a CSV cell.
REASON_SEPARATOR = "; "
#: ``format`` and ``version`` of ``summary.json``.
JSON_FORMAT = "fhir-pa-batch-report"
JSON_VERSION = 1



def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def row_as_dict(row: BatchRow, *, now: datetime) -> dict[str, Any]:
    """Every field of the row in JSON types, plus the derived ``decision_seconds`` and ``clock`` (at ``now``)."""
    return {
        "order_id": row.order_id,
        "outcome": row.outcome,
        "urgency": row.urgency,
        "state": row.state,
        "record_id": row.record_id,
        "preauth_ref": row.preauth_ref,
        "submitted_at": _iso(row.submitted_at),
        "decided_at": _iso(row.decided_at),
        "deadline_at": _iso(row.deadline_at),
        "decision_seconds": row.decision_seconds,
        "clock": row.clock(now),
        "channel": row.channel,
        "pa_needed": row.pa_needed,
        "documentation": row.documentation,
        "denial_reasons": list(row.denial_reasons),
        "error_code": row.error_code,
        "error": row.error,
        "worker": row.worker,
        "attempts": row.attempts,
    }


def row_from_dict(data: Mapping[str, Any]) -> BatchRow:
    """The row back from :func:`row_as_dict` (the derived keys are ignored)."""
    try:
        outcome, urgency = data["outcome"], data.get("urgency", "standard")
        if outcome not in OUTCOMES or urgency not in URGENCIES:
            raise ValueError(f"outcome {outcome!r}, urgency {urgency!r}")
        return BatchRow(
            order_id=str(data["order_id"]),
            outcome=outcome,
            urgency=urgency,
            state=_text(data, "state"),
            record_id=_text(data, "record_id"),
            preauth_ref=_text(data, "preauth_ref"),
            submitted_at=_datetime(data, "submitted_at"),
            decided_at=_datetime(data, "decided_at"),
            deadline_at=_datetime(data, "deadline_at"),
            channel=_text(data, "channel"),
            pa_needed=_text(data, "pa_needed"),
            documentation=str(data.get("documentation") or "none"),
            denial_reasons=tuple(str(reason) for reason in data.get("denial_reasons") or ()),
            error_code=_text(data, "error_code"),
            error=_text(data, "error"),
            worker=_text(data, "worker"),
            attempts=int(data.get("attempts") or 0),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"not a batch report row: {type(exc).__name__}: {exc}") from exc


def _text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return None if value is None else str(value)


def _datetime(data: Mapping[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    return datetime.fromisoformat(value) if value else None


def csv_text(rows: Sequence[BatchRow], *, now: datetime) -> str:
    """``orders.csv`` as text: a header, then one line per order; empty cells for unknown values, text cells safe
    to open in a spreadsheet (:mod:`fhir_pa.spreadsheet`; the exact values are in ``summary.json``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        data = row_as_dict(row, now=now)
        data["denial_reasons"] = REASON_SEPARATOR.join(row.denial_reasons)
        writer.writerow([safe_cell(data[column]) for column in CSV_COLUMNS])
    return out.getvalue()


def write_csv(rows: Sequence[BatchRow], path: str | os.PathLike[str], *, now: datetime | None = None) -> None:
    """Write ``orders.csv``. ``now`` decides open vs overdue in the ``clock`` column (default: the current time,
    UTC; give the summary's ``now`` so both files agree)."""
    _write_atomic(Path(path), csv_text(rows, now=now or datetime.now(UTC)))


def json_document(rows: Sequence[BatchRow], summary: BatchSummary) -> dict[str, Any]:
    """``summary.json`` as data: the summary and every order (clocks read at ``summary.now``)."""
    return {
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "summary": summary.as_dict(),
        "orders": [row_as_dict(row, now=summary.now) for row in rows],
    }


def write_json(rows: Sequence[BatchRow], summary: BatchSummary, path: str | os.PathLike[str]) -> None:
    """Write ``summary.json`` (UTF-8, indented, keys in a stable order)."""
    text = json.dumps(json_document(rows, summary), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    _write_atomic(Path(path), text)


def write_reports(rows: Sequence[BatchRow], summary: BatchSummary, directory: str | os.PathLike[str], *,
                  title: str = "fhir-pa batch report") -> dict[str, Path]:
    """Write ``orders.csv``, ``summary.json`` and ``report.html`` into ``directory`` (created if missing).

    Returns their paths under the keys ``csv``, ``json`` and ``html``. The HTML needs the ``report`` extra;
    without it a :class:`~fhir_pa.errors.ConfigurationError` is raised after the CSV and JSON are written.
    """
    from fhir_pa.batch.report_html import write_html

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / "orders.csv", "json": folder / "summary.json", "html": folder / "report.html"}
    write_csv(rows, paths["csv"], now=summary.now)
    write_json(rows, summary, paths["json"])
    write_html(rows, summary, paths["html"], title=title)
    return paths


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


__all__ = [
    "CSV_COLUMNS",
    "JSON_FORMAT",
    "JSON_VERSION",
    "REASON_SEPARATOR",
    "csv_text",
    "json_document",
    "row_as_dict",
    "row_from_dict",
    "write_csv",
    "write_json",
    "write_reports",
]

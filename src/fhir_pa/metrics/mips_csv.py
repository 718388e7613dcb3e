"""The MIPS evidence report as CSV (stdlib ``csv``): one line per (NPI, TIN), or one per evidence entry.

Text cells are made safe to open in a spreadsheet (:mod:`fhir_pa.spreadsheet`): preauth references come from
payers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import TextIO

from fhir_pa.metrics.mips import MipsReport
from fhir_pa.spreadsheet import safe_cell

SUMMARY_COLUMNS = ("performance_year", "npi", "tin", "attestation", "requests", "first_request", "last_request",
                   "payers", "drug_only", "not_delivered", "evidence_record_ids")
EVIDENCE_COLUMNS = ("performance_year", "npi", "tin", "record_id", "submitted_at", "payer", "preauth_ref", "state",
                    "final", "bundle_identifier")
def _write(out: TextIO, columns: tuple[str, ...], rows: Iterable[tuple[object, ...]]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([safe_cell(v) for v in row] for row in rows)


def write_summary_csv(report: MipsReport, out: TextIO) -> None:
    """One line per (NPI, TIN); several payers or record ids are joined with ``;``."""
    _write(out, SUMMARY_COLUMNS, (
        (report.year, r.npi, r.tin, r.attestation, r.requests, r.first_request, r.last_request, ";".join(r.payers),
         r.drug_only, r.not_delivered, ";".join(e.record_id for e in r.evidence)) for r in report.rows))


def write_evidence_csv(report: MipsReport, out: TextIO) -> None:
    """One line per counted request, for an auditor who wants to trace each one."""
    _write(out, EVIDENCE_COLUMNS, (
        (report.year, r.npi, r.tin, e.record_id, e.submitted_at.isoformat(), e.payer, e.preauth_ref, e.state,
         e.final, e.bundle_identifier) for r in report.rows for e in r.evidence))


def summary_csv(report: MipsReport) -> str:
    buffer = io.StringIO()
    write_summary_csv(report, buffer)
    return buffer.getvalue()


def evidence_csv(report: MipsReport) -> str:
    buffer = io.StringIO()
    write_evidence_csv(report, buffer)
    return buffer.getvalue()

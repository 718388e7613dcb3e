"""Evidence for the MIPS Promoting Interoperability measure "Electronic Prior Authorization" (attested from CY2027).

The measure asks a clinician: did you request at least one prior authorization for a medical item or service
(not a drug) electronically, through a payer's FHIR Prior Authorization API, using data from certified EHR
technology? The ledger proves the electronic part: the exact PAS Bundle sent with ``Claim/$submit`` and the
moment the payer received it (``submitted_at``). Whether the data came from certified EHR technology is the
attester's to confirm; the report says so rather than pretend.

One row per (clinician NPI, practice TIN). Counted: original requests (updates and cancels are the same prior
authorization) the payer received during the calendar year in UTC, for at least one non-drug item. Requests
recorded that year that never reached a payer, and drug-only ones, are shown but not counted, so a "no" can be
explained. Nothing about the patient is read or written: the report holds identifiers of clinicians,
organizations, payers and our own records only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, or_

from fhir_pa.errors import InputError
from fhir_pa.ledger.store import Ledger
from fhir_pa.metrics.cases import Case, created_between, load_cases, never_submitted, submitted_between
from fhir_pa.metrics.request_view import RequestView
from fhir_pa.metrics.requester import Requester, requester_of
from fhir_pa.metrics.services import requests_medical_service

MEASURE = "Electronic Prior Authorization"
#: The first performance year in which the measure is attested.
FIRST_YEAR = 2027
ATTESTER_NOTE = ("Counts prior authorization requests for medical items or services (not drugs) that the payer "
                 "received through its FHIR Prior Authorization API (Da Vinci PAS Claim/$submit). Confirming that "
                 "the data came from certified EHR technology is the attester's responsibility.")


@dataclass(frozen=True)
class MipsEvidence:
    """One request that counts: our record, when the payer got it, and where the case stands now."""

    record_id: str
    submitted_at: datetime
    payer: str
    preauth_ref: str | None
    state: str
    final: bool
    bundle_identifier: str


@dataclass(frozen=True)
class MipsRow:
    npi: str | None
    tin: str | None
    evidence: tuple[MipsEvidence, ...]
    #: Received by a payer this year but for drugs only: outside the measure.
    drug_only: int = 0
    #: Recorded this year but never received by a payer (not electronic evidence of anything).
    not_delivered: int = 0

    @property
    def requests(self) -> int:
        return len(self.evidence)

    @property
    def first_request(self) -> date | None:
        return self.evidence[0].submitted_at.date() if self.evidence else None

    @property
    def last_request(self) -> date | None:
        return self.evidence[-1].submitted_at.date() if self.evidence else None

    @property
    def payers(self) -> tuple[str, ...]:
        return tuple(sorted({e.payer for e in self.evidence}))

    @property
    def attestation(self) -> str:
        return "yes" if self.evidence else "no"


@dataclass(frozen=True)
class MipsReport:
    year: int
    generated_at: datetime
    rows: tuple[MipsRow, ...]


def year_bounds(year: int) -> tuple[datetime, datetime]:
    """``[Jan 1, next Jan 1)`` of ``year`` in UTC, the ledger's time zone."""
    if not 1900 <= year <= 9998:
        raise InputError(f"performance year {year} is out of range")
    return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)


@dataclass
class _Tally:
    evidence: list[MipsEvidence]
    drug_only: int = 0
    not_delivered: int = 0


def _evidence(case: Case, submitted_at: datetime) -> MipsEvidence:
    return MipsEvidence(record_id=case.id, submitted_at=submitted_at, payer=case.payer, preauth_ref=case.preauth_ref,
                        state=case.state, final=case.final, bundle_identifier=case.bundle_identifier)


def build_rows(cases: list[Case], year: int) -> tuple[MipsRow, ...]:
    """Rows from loaded cases (with their request bodies); pure, so it can be checked without a ledger."""
    start, end = year_bounds(year)
    tallies: dict[Requester, _Tally] = defaultdict(lambda: _Tally([]))
    for case in cases:
        if case.submitted_at is not None and not start <= case.submitted_at < end:
            continue
        view = RequestView.from_bytes(case.request_body)
        tally = tallies[requester_of(view)]
        if case.submitted_at is None:
            tally.not_delivered += 1
        elif not requests_medical_service(view):
            tally.drug_only += 1
        else:
            tally.evidence.append(_evidence(case, case.submitted_at))
    return tuple(
        MipsRow(npi=who.npi, tin=who.tin, drug_only=t.drug_only, not_delivered=t.not_delivered,
                evidence=tuple(sorted(t.evidence, key=lambda e: (e.submitted_at, e.record_id))))
        for who, t in sorted(tallies.items(), key=lambda kv: (kv[0].npi or "", kv[0].tin or "")))


def mips_report(ledger: Ledger, year: int, *, now: datetime | None = None) -> MipsReport:
    """The evidence report for performance ``year``."""
    start, end = year_bounds(year)
    received = and_(*submitted_between(start, end))
    attempted = and_(never_submitted(), created_between(start, end))
    cases = load_cases(ledger, where=[or_(received, attempted)], with_request=True)
    return MipsReport(year=year, generated_at=now or datetime.now(UTC), rows=build_rows(cases, year))


def evidence_as_json(evidence: MipsEvidence) -> dict[str, Any]:
    return {"record_id": evidence.record_id, "submitted_at": evidence.submitted_at.isoformat(),
            "payer": evidence.payer, "preauth_ref": evidence.preauth_ref, "state": evidence.state,
            "final": evidence.final, "bundle_identifier": evidence.bundle_identifier}


def row_as_json(row: MipsRow) -> dict[str, Any]:
    return {
        "npi": row.npi,
        "tin": row.tin,
        "attestation": row.attestation,
        "requests": row.requests,
        "first_request": row.first_request.isoformat() if row.first_request else None,
        "last_request": row.last_request.isoformat() if row.last_request else None,
        "payers": list(row.payers),
        "drug_only": row.drug_only,
        "not_delivered": row.not_delivered,
        "evidence": [evidence_as_json(e) for e in row.evidence],
    }


def mips_as_json(report: MipsReport) -> dict[str, Any]:
    """The JSON view (``fhir-pa mips --json``)."""
    return {
        "measure": MEASURE,
        "performance_year": report.year,
        "generated_at": report.generated_at.isoformat(),
        "note": ATTESTER_NOTE,
        "rows": [row_as_json(r) for r in report.rows],
    }

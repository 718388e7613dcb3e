"""The MIPS "Electronic Prior Authorization" evidence report: one row per (NPI, TIN), only requests a payer
received during the year, updates folded into their case, drugs left out, and never any patient data."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from fhir_pa.config import Sender
from fhir_pa.errors import InputError
from fhir_pa.ledger.store import Ledger
from fhir_pa.metrics import evidence_csv, mips_as_json, mips_report, requester_of, summary_csv
from fhir_pa.metrics.request_view import RequestView
from fhir_pa.metrics.services import requests_medical_service
from fhir_pa.pas import codes
from fhir_pa.pas.bundle import PasRequest, build_request_bundle
from fhir_pa.pas.update import build_update_bundle
from tests.unit.metrics_ledger import SECRETS, Writer, order, response

P1 = "http://payer-one.example/fhir"
P2 = "http://payer-two.example/fhir"
NPI_A, NPI_B, NPI_D = "1234567893", "1003000126", "1245319599"
NOW = datetime(2028, 1, 15, tzinfo=UTC)


def other_writer(order_id: str) -> PasRequest:
    """A Bundle as another EHR might write it: OIDs for NPI and TIN, Claim.provider → the PractitionerRole."""
    built = build_request_bundle(order(order_id, npi=NPI_D, tin="11-1223333"))
    entries = built.bundle["entry"]
    by_type = {e["resource"]["resourceType"]: e for e in entries}
    by_type["Practitioner"]["resource"]["identifier"] = [{"system": "urn:oid:2.16.840.1.113883.4.6", "value": NPI_D}]
    requestor = next(e for e in entries if e["resource"]["resourceType"] == "Organization"
                     and e["resource"]["meta"]["profile"] == [codes.REQUESTOR])
    requestor["resource"]["identifier"] = [{"system": "urn:oid:2.16.840.1.113883.4.4", "value": "111-22-3333"}]
    entries[0]["resource"]["provider"] = {"reference": by_type["PractitionerRole"]["fullUrl"]}
    del entries[0]["resource"]["careTeam"]
    return built


def build(ledger: Ledger) -> None:
    w = Writer(ledger)
    a1 = w.request("a1", payer=P1, submitted=datetime(2027, 2, 10, 15, tzinfo=UTC), state="approved",
                   answer=response("A1", preauth="PA-A1"), preauth="PA-A1")
    # a Claim Update of a1 in March: the same prior authorization, not a second request
    update = w.intent(build_update_bundle(json.loads(a1.request_body), order("a1", services=[
        {"code": "72148", "service_date": "2026-12-01", "quantity": 3}]), sender=Sender()),
        payer=P1, kind="update", prior=a1, order_id="a1#update-1")
    w.send(update, datetime(2027, 3, 1, tzinfo=UTC), response("A1", preauth="PA-A1-U"), "approved",
           preauth="PA-A1-U")
    w.request("a2", payer=P2, submitted=datetime(2027, 11, 30, 8, tzinfo=UTC), state="pended", tin="12-3456789")
    w.request("a3", payer=P1, submitted=datetime(2026, 12, 31, 23, 59, tzinfo=UTC), state="approved",
              answer=response("A1"))
    w.request("a4", payer=P1, submitted=datetime(2028, 1, 1, tzinfo=UTC), state="approved", answer=response("A1"))
    w.request("a5", payer=P1, submitted=datetime(2027, 5, 5, tzinfo=UTC), state="approved", answer=response("A1"),
              services=[{"code": "J1745", "code_system": "hcpcs", "quantity": 1}])  # a drug: outside the measure
    w.request("b1", payer=P1, submitted=None, npi=NPI_B, created=datetime(2027, 4, 1, tzinfo=UTC))
    w.request("b2", payer=P1, submitted=None, npi=NPI_B, created=datetime(2026, 4, 1, tzinfo=UTC))  # other year
    w.request("c1", payer=P2, submitted=datetime(2027, 6, 1, tzinfo=UTC), state="denied", tin="987654321",
              answer=response("A3"))
    d1 = w.intent(other_writer("d1"), payer=P2)
    w.send(d1, datetime(2027, 7, 4, 12, tzinfo=UTC), response("A1", preauth="PA-D1"), "approved", preauth="PA-D1")


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    store = Ledger.at_path(tmp_path / "ledger.sqlite")
    build(store)
    return store


def _rows(view: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(r["npi"], r["tin"], r["attestation"], r["requests"], r["first_request"], r["last_request"], r["payers"],
             r["drug_only"], r["not_delivered"]) for r in view["rows"]]


def test_one_row_per_clinician_and_practice(ledger: Ledger) -> None:
    view = mips_as_json(mips_report(ledger, 2027, now=NOW))
    assert view["measure"] == "Electronic Prior Authorization" and view["performance_year"] == 2027
    assert _rows(view) == [
        (NPI_B, "123456789", "no", 0, None, None, [], 0, 1),
        (NPI_A, "123456789", "yes", 2, "2027-02-10", "2027-11-30", [P1, P2], 1, 0),
        (NPI_A, "987654321", "yes", 1, "2027-06-01", "2027-06-01", [P2], 0, 0),
        (NPI_D, "111223333", "yes", 1, "2027-07-04", "2027-07-04", [P2], 0, 0),
    ]


def test_evidence_entries(ledger: Ledger) -> None:
    report = mips_report(ledger, 2027, now=NOW)
    row = report.rows[1]
    a1, a2 = (ledger.find(payer=P1, order_id="a1"), ledger.find(payer=P2, order_id="a2"))
    assert a1 is not None and a2 is not None
    assert [(e.record_id, e.submitted_at, e.payer, e.preauth_ref, e.state, e.final, e.bundle_identifier)
            for e in row.evidence] == [
        (a1.id, datetime(2027, 2, 10, 15, tzinfo=UTC), P1, "PA-A1-U", "approved", True, a1.bundle_identifier),
        (a2.id, datetime(2027, 11, 30, 8, tzinfo=UTC), P2, None, "pended", False, a2.bundle_identifier)]
    assert (row.first_request, row.last_request) == (date(2027, 2, 10), date(2027, 11, 30))
    assert mips_as_json(report)["rows"][1]["evidence"][0] == {
        "record_id": a1.id, "submitted_at": "2027-02-10T15:00:00+00:00", "payer": P1, "preauth_ref": "PA-A1-U",
        "state": "approved", "final": True, "bundle_identifier": a1.bundle_identifier}


def test_years_are_calendar_years_in_utc(ledger: Ledger) -> None:
    earlier = mips_as_json(mips_report(ledger, 2026, now=NOW))
    assert _rows(earlier) == [(NPI_B, "123456789", "no", 0, None, None, [], 0, 1),
                              (NPI_A, "123456789", "yes", 1, "2026-12-31", "2026-12-31", [P1], 0, 0)]
    later = mips_as_json(mips_report(ledger, 2028, now=NOW))
    assert _rows(later) == [(NPI_A, "123456789", "yes", 1, "2028-01-01", "2028-01-01", [P1], 0, 0)]
    assert mips_report(ledger, 2030, now=NOW).rows == ()
    with pytest.raises(InputError, match="out of range"):
        mips_report(ledger, 20270)


def test_no_patient_data_in_any_output(ledger: Ledger) -> None:
    sent = b"".join(r.request_body for r in ledger.records())
    assert all(secret.encode() in sent for secret in SECRETS)  # the requests do carry them
    report = mips_report(ledger, 2027, now=NOW)
    for text in (json.dumps(mips_as_json(report)), summary_csv(report), evidence_csv(report)):
        assert not [secret for secret in SECRETS if secret in text]
        assert "Doc" not in text and "Bo" not in text  # nor the clinician's name: NPIs identify clinicians


def test_csv_forms(ledger: Ledger) -> None:
    report = mips_report(ledger, 2027, now=NOW)
    summary = list(csv.DictReader(io.StringIO(summary_csv(report))))
    assert [(r["npi"], r["tin"], r["attestation"], r["requests"], r["payers"]) for r in summary] == [
        (NPI_B, "123456789", "no", "0", ""), (NPI_A, "123456789", "yes", "2", f"{P1};{P2}"),
        (NPI_A, "987654321", "yes", "1", P2), (NPI_D, "111223333", "yes", "1", P2)]
    assert summary[1]["evidence_record_ids"] == ";".join(e.record_id for e in report.rows[1].evidence)
    assert summary[1]["first_request"] == "2027-02-10" and summary[1]["performance_year"] == "2027"
    evidence = list(csv.DictReader(io.StringIO(evidence_csv(report))))
    assert len(evidence) == 4
    assert (evidence[0]["npi"], evidence[0]["preauth_ref"], evidence[0]["final"]) == (NPI_A, "PA-A1-U", "true")


def test_csv_cells_cannot_be_formulas(tmp_path: Path) -> None:
    ledger = Ledger.at_path(tmp_path / "f.sqlite")
    Writer(ledger).request("f1", payer=P1, submitted=datetime(2027, 1, 5, tzinfo=UTC), state="approved",
                           answer=response("A1"), preauth="=HYPERLINK(\"x\")")
    text = evidence_csv(mips_report(ledger, 2027))
    (row,) = csv.DictReader(io.StringIO(text))
    assert row["preauth_ref"] == "'=HYPERLINK(\"x\")"


def test_requester_and_service_readers() -> None:
    ours = RequestView(build_request_bundle(order("r1", tin="12-3456789")).bundle)
    assert (requester_of(ours).npi, requester_of(ours).tin) == (NPI_A, "123456789")
    theirs = RequestView(other_writer("r2").bundle)
    assert (requester_of(theirs).npi, requester_of(theirs).tin) == (NPI_D, "111223333")
    no_tin = RequestView(build_request_bundle(order("r3", tin=None)).bundle)
    assert (requester_of(no_tin).npi, requester_of(no_tin).tin) == (NPI_A, None)
    assert requester_of(RequestView.from_bytes(b"not json")).npi is None
    assert requests_medical_service(ours)
    drug = build_request_bundle(order("r4", services=[{"code": "J9035", "code_system": "hcpcs"}])).bundle
    assert not requests_medical_service(RequestView(drug))
    mixed = build_request_bundle(order("r5", services=[{"code": "J9035", "code_system": "hcpcs"},
                                                       {"code": "E0570", "code_system": "hcpcs"}])).bundle
    assert requests_medical_service(RequestView(mixed))
    rx = build_request_bundle(order("r6")).bundle
    rx["entry"][0]["resource"]["item"][0]["productOrService"] = {"coding": [
        {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361"}]}
    assert not requests_medical_service(RequestView(rx))
    pharmacy = build_request_bundle(order("r7")).bundle
    pharmacy["entry"][0]["resource"]["type"] = {"coding": [{"code": "pharmacy"}]}
    assert not requests_medical_service(RequestView(pharmacy))

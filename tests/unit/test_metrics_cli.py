"""``fhir-pa metrics`` and ``fhir-pa mips`` on the real command tree: JSON, tables, CSV files, and errors as one
line with the exit code of their kind."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fhir_pa.cli import errors as cli_errors
from fhir_pa.cli.main import build_app
from fhir_pa.cli.metrics import human, open_existing, parse_when
from fhir_pa.errors import InputError
from fhir_pa.ledger.store import Ledger
from tests.unit.metrics_ledger import SECRETS, Writer, hours, response

A = "http://payer-a.example/fhir"
B = "http://payer-b.example/fhir"
T = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger.at_path(path)
    w = Writer(ledger)
    w.request("o1", payer=A, submitted=T, state="approved", decided=T + hours(2), answer=response("A1"),
              preauth="PA-1")
    w.request("o2", payer=A, urgency="expedited", submitted=T + hours(1), state="denied", decided=T + hours(5),
              answer=response(("A3", (("[AA]", "Not medically necessary"),))))
    w.request("o3", payer=B, submitted=datetime(2027, 4, 2, tzinfo=UTC), state="approved",
              decided=datetime(2027, 4, 2, tzinfo=UTC) + hours(800),
              answer=response("A1"))
    w.request("o4", payer=A, submitted=None, created=datetime(2027, 5, 1, tzinfo=UTC), npi="1003000126")
    ledger.close()
    return path


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "argv", ["fhir-pa", *args])
    code = cli_errors.run(build_app())
    out, err = capsys.readouterr()
    return code, out, err


def test_metrics_json(ledger_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(monkeypatch, capsys, "metrics", "--ledger", str(ledger_file), "--payer", A, "--json")
    assert code == 0, err
    view = json.loads(out)
    assert view["cases"] == 3 and view["by_state"] == {"approved": 1, "denied": 1, "prepared": 1}
    assert view["denial_reasons"] == {"[AA]: Not medically necessary": 1}
    assert view["decision_time_seconds"]["standard"]["p50"] == 7200
    assert view["decision_time_seconds"]["expedited"]["max"] == 4 * 3600
    assert view["cms_clock"]["all"]["on-time"] == 2 and view["cms_clock"]["all"]["not-started"] == 1


def test_metrics_window_includes_the_whole_until_day(ledger_file: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(monkeypatch, capsys, "metrics", "--ledger", str(ledger_file), "--since", "2027-03-01",
                         "--until", "2027-04-02", "--json")
    assert code == 0, err
    view = json.loads(out)
    assert view["filters"] == {"payer": None, "since": "2027-03-01T00:00:00+00:00",
                               "until": "2027-04-03T00:00:00+00:00"}
    assert view["cases"] == 3 and view["cms_clock"]["all"]["late"] == 1  # o3: 800 h on a 7-day clock


def test_metrics_table(ledger_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(monkeypatch, capsys, "metrics", "--ledger", str(ledger_file))
    assert code == 0, err
    assert "4 prior authorizations (all payers)" in out
    for heading in ("By state", "Time to decision", "CMS decision clock", "Denial reasons"):
        assert heading in out
    assert "[AA]: Not medically necessary" in out  # brackets are data, not Rich markup
    assert "approvals 2 (approved, partial, modified), denials 1, approval rate 66.7%" in out
    assert "4.0 h" in out and "33.3 d" in out


def test_mips_json_csv_and_table(ledger_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    summary, evidence = tmp_path / "mips.csv", tmp_path / "evidence.csv"
    code, out, err = run(monkeypatch, capsys, "mips", "--year", "2027", "--ledger", str(ledger_file),
                         "--csv", str(summary), "--evidence-csv", str(evidence), "--json")
    assert code == 0, err
    view = json.loads(out)
    assert [(r["npi"], r["tin"], r["attestation"], r["requests"], r["payers"]) for r in view["rows"]] == [
        ("1003000126", "123456789", "no", 0, []), ("1234567893", "123456789", "yes", 3, [A, B])]
    with summary.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["npi"], r["attestation"], r["requests"], r["not_delivered"]) for r in rows] == [
        ("1003000126", "no", "0", "1"), ("1234567893", "yes", "3", "0")]
    with evidence.open(newline="", encoding="utf-8") as f:
        assert [r["preauth_ref"] for r in csv.DictReader(f)] == ["PA-1", "", ""]
    for text in (out, summary.read_text(encoding="utf-8"), evidence.read_text(encoding="utf-8")):
        assert not [secret for secret in SECRETS if secret in text]
    code, out, err = run(monkeypatch, capsys, "mips", "--year", "2027", "--ledger", str(ledger_file))
    assert code == 0, err
    assert "MIPS Electronic Prior Authorization, 2027" in out and "1234567893" in out and "yes" in out


def test_mips_before_2027_warns(ledger_file: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(monkeypatch, capsys, "mips", "--year", "2026", "--ledger", str(ledger_file), "--json")
    assert code == 0
    assert "attested from performance year 2027" in err and json.loads(out)["rows"] == []


@pytest.mark.parametrize(("args", "kind", "needle"), [
    (["metrics", "--since", "March"], "input", "--since wants a date (YYYY-MM-DD) or an ISO date-time"),
    (["metrics", "--since", "2027-02-01", "--until", "2027-01-01"], "input", "--until is not after --since"),
    (["mips", "--year", "99999"], "input", "performance year 99999 is out of range"),
])
def test_bad_input_is_one_line_and_exit_2(ledger_file: Path, args: list[str], kind: str, needle: str,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(monkeypatch, capsys, *args, "--ledger", str(ledger_file))
    assert code == cli_errors.EXIT_CODES[kind]
    assert err.startswith(f"fhir-pa: {kind} error: ") and needle in err and err.count("\n") == 1


def test_missing_ledger_is_a_ledger_error_not_an_empty_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.sqlite"
    for command in (["metrics"], ["mips", "--year", "2027"]):
        code, _, err = run(monkeypatch, capsys, *command, "--ledger", str(missing))
        assert code == cli_errors.EXIT_CODES["ledger"] and "no ledger at" in err
    assert not missing.exists()


def test_unwritable_csv_is_an_input_error(ledger_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(monkeypatch, capsys, "mips", "--year", "2027", "--ledger", str(ledger_file),
                       "--csv", str(tmp_path / "no-such-dir" / "out.csv"))
    assert code == cli_errors.EXIT_CODES["input"] and "cannot write" in err


def test_a_database_url_needs_no_file(ledger_file: Path) -> None:
    store = open_existing(f"sqlite:///{ledger_file}")  # as open_ledger gets it from a str option
    try:
        assert len(store.records()) == 4
    finally:
        store.close()


def test_helpers() -> None:
    assert parse_when("2027-01-31", "--until", end=True) == datetime(2027, 2, 1, tzinfo=UTC)
    assert parse_when("2027-01-31T10:00:00Z", "--since") == datetime(2027, 1, 31, 10, tzinfo=UTC)
    assert parse_when("2027-01-31T10:00:00", "--since") == datetime(2027, 1, 31, 10, tzinfo=UTC)
    with pytest.raises(InputError):
        parse_when("2027-13-01", "--since")
    assert [human(s) for s in (None, 0.25, 42, 750, 7260, 90000, -30)] == [
        "-", "250 ms", "42.0 s", "12.5 min", "2.0 h", "1.0 d", "-30.0 s"]

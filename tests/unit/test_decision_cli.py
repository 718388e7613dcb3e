"""``fhir-pa pas explain`` on a fresh Typer app: the JSON view, the tables, and errors as one line + exit code."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from fhir_pa.cli import errors as cli_errors
from fhir_pa.cli import explain
from fhir_pa.pas import codes
from fhir_pa.pas.decision import decision_as_json, parse_response

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
WIDE = {"COLUMNS": "200"}


def _noop() -> None:
    """A second command keeps Typer in sub-command mode, as under ``fhir-pa pas``."""


def _app() -> typer.Typer:
    app = typer.Typer()
    explain.register(app)
    app.command("noop")(_noop)
    return app


def _review(code: str, number: str | None = None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"url": codes.EXT_REVIEW_ACTION_CODE,
                                    "valueCodeableConcept": {"coding": [{"code": code}]}}]
    if number:
        parts.append({"url": "number", "valueString": number})
    return {"extension": [{"url": codes.EXT_REVIEW_ACTION, "extension": parts}]}


def _response(tmp_path: Path) -> Path:
    """Item 1 approved, item 2 denied with a note, one error pointing at a bracketed FHIRPath."""
    response = {"resourceType": "ClaimResponse", "id": "cr-cli", "outcome": "complete", "preAuthRef": "PA-77",
                "item": [{"itemSequence": 1, "adjudication": [_review("A1", "AUTH-1")]},
                         {"itemSequence": 2, "noteNumber": [1], "adjudication": [_review("A3")]}],
                "processNote": [{"number": 1, "text": "Not covered"}],
                "error": [{"code": {"coding": [{"code": "15"}]}, "extension": [
                    {"url": codes.extension("errorPath"), "valueString": "Bundle.entry[0].resource.item[1]"}]}]}
    path = tmp_path / "response.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": response}]}))
    return path


def test_json_output_is_decision_as_json(tmp_path: Path) -> None:
    path = _response(tmp_path)
    result = CliRunner().invoke(_app(), ["explain", str(path), "--json"])
    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    assert view == decision_as_json(parse_response(path.read_bytes()))
    assert view["status"] == "error" and view["preauth_ref"] == "PA-77"
    assert [(i["sequence"], i["review_action"], i["status"], i["auth_number"]) for i in view["items"]] == [
        (1, "A1", "approved", "AUTH-1"), (2, "A3", "denied", None)]
    assert [(e["code"], e["path"]) for e in view["errors"]] == [("15", "Bundle.entry[0].resource.item[1]")]


def test_json_output_for_the_ig_error_example() -> None:
    path = FIXTURES / "pas" / "Bundle-ErrorResponseBundleExample.json"
    if not path.exists():
        pytest.skip("shared fixtures not available")
    result = CliRunner().invoke(_app(), ["explain", str(path), "--json"])
    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    assert view["status"] == "error" and view["items"] == []
    assert [(e["code"], e["path"], e["element"], e["followup"]) for e in view["errors"]] == [
        ("04", None, None, None), ("T4", "Bundle.entry[1].Organization.name", "2010A-NM103", "C")]


def test_table_output_shows_status_items_errors_literally(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["explain", str(_response(tmp_path))], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "decision: ERROR (final)  preauth PA-77" in result.output
    assert "AUTH-1" in result.output and "Not covered" in result.output
    assert "Bundle.entry[0].resource.item[1]" in result.output  # brackets are data, not Rich markup


def test_table_output_shows_warnings(tmp_path: Path) -> None:
    path = tmp_path / "queued.json"
    path.write_text(json.dumps({"resourceType": "ClaimResponse", "outcome": "queued"}))
    result = CliRunner().invoke(_app(), ["explain", str(path)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "decision: UNKNOWN (not final)" in result.output
    assert "warning: outcome 'queued' is 2.0.1-era" in result.output


def test_reads_standard_input(tmp_path: Path) -> None:
    raw = _response(tmp_path).read_text()
    result = CliRunner().invoke(_app(), ["explain", "-", "--json"], input=raw)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["claim_response_id"] == "cr-cli"


def _run(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["fhir-pa", *args])
    return cli_errors.run(_app())


def test_missing_file_is_an_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.json"
    assert _run(monkeypatch, "explain", str(missing)) == cli_errors.EXIT_CODES["input"]
    err = capsys.readouterr().err
    assert err.startswith("fhir-pa: input error: cannot read response file") and "nowhere.json" in err
    assert "Traceback" not in err


def test_html_body_is_an_invalid_response(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "gateway.html"
    page.write_text("<html><body>Bad gateway</body></html>")
    assert _run(monkeypatch, "explain", str(page), "--json") == cli_errors.EXIT_CODES["invalid-response"]
    err = capsys.readouterr().err
    assert err == ("fhir-pa: invalid-response error: gateway.html is not JSON (it looks like HTML or XML): "
                   "Expecting value at line 1 column 1 (at $)\n")

"""``fhir-pa crd explain``: the JSON view, the tables, and bad input as one line on stderr + a non-zero exit."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fhir_pa.cli import errors as cli_errors
from fhir_pa.cli.crd import crd_app
from fhir_pa.cli.main import app
from fhir_pa.crd.cards import parse_hook_response
from fhir_pa.crd.coverage_info import CRD_TEMP, EXT_COVERAGE_INFORMATION
from fhir_pa.crd.decision import coverage_decisions
from fhir_pa.crd.explain import explain_json
from tests.conftest import fixture_path

WIDE = {"COLUMNS": "220"}


def _legacy_ri_response() -> dict[str, Any]:
    """The payer RI's shape: a prior-auth card whose suggestion updates the order with pre-2.0 coverage-info."""
    info = {"url": EXT_COVERAGE_INFORMATION, "extension": [
        {"url": "coverageInfo", "valueCoding": {"system": CRD_TEMP, "code": "prior-auth"}},
        {"url": "coverageInfo", "valueCoding": {"system": CRD_TEMP, "code": "clinical"}},
        {"url": "coverage", "valueReference": {"reference": "Coverage/cov-94640"}},
        {"url": "date", "valueDate": "2025-09-01"},
        {"url": "identifier", "valueString": "ri-7f3a"}]}
    order = {"resourceType": "ServiceRequest", "id": "sr-94640", "status": "draft",
             "note": [{"text": "Prior Authorization required, documentation required"}], "extension": [info]}
    return {"cards": [{
        "summary": "Inhalation treatment: prior authorization required", "indicator": "info",
        "source": {"label": "Da Vinci CRD Reference Implementation",
                   "topic": {"system": CRD_TEMP, "code": "prior-auth"}},
        "links": [{"label": "Order Form", "url": "https://dtr.example/launch", "type": "smart",
                   "appContext": "questionnaire=Questionnaire/Hypoxemia&order=ServiceRequest/sr-94640"}],
        "suggestions": [{"label": "Save Update To EHR", "actions": [
            {"type": "update", "description": "Update original ServiceRequest to add note", "resource": order}]}],
        "selectionBehavior": "any"}]}


def _write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_json_output_is_explain_json(tmp_path: Path) -> None:
    path = _write(tmp_path, "ri.json", _legacy_ri_response())
    result = CliRunner().invoke(crd_app, ["explain", str(path), "--json", "--order", "ServiceRequest/sr-94640"])
    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    response = parse_hook_response(path.read_bytes(), source="ri.json")
    assert view == explain_json(response, coverage_decisions(response, ["ServiceRequest/sr-94640"]))
    (order,) = view["orders"]
    assert (order["order"], order["covered"], order["pa_needed"], order["doc_needed"]) == (
        "ServiceRequest/sr-94640", "covered", "auth-needed", ["clinical"])
    assert (order["legacy"], order["origin"], order["coverage_assertion_id"]) == (True, "card-suggestion", "ri-7f3a")
    assert [i["rule"] for i in order["issues"]] == ["legacy", "resp-25"]
    (card,) = view["cards"]
    assert card["links"][0]["smart_launch"] is True and card["card_type"] == "prior-auth"


def test_table_output_for_the_ig_response_shows_the_decision() -> None:
    path = fixture_path("crd", "CRDServiceResponse.json")
    result = CliRunner().invoke(crd_app, ["explain", str(path)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "ServiceRequest/idfromcontext" in result.output and "satisfied" in result.output
    assert "12345ABC / PA Q8U119" in result.output and "77065, 77066, 77067" in result.output
    assert "Patient is overdue for a PAP smear" in result.output and "therapy-alternatives-opt" in result.output
    assert "warning: $.cards[2].suggestions[0].uuid is missing" in result.output  # brackets are data, not markup


def test_table_output_flags_orders_without_an_answer(tmp_path: Path) -> None:
    path = _write(tmp_path, "empty.json", {"cards": []})
    result = CliRunner().invoke(crd_app, ["explain", str(path), "--order", "ServiceRequest/9"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "none sent" in result.output
    assert "error: ServiceRequest/9: [hook-16] the payer sent no coverage-information" in result.output


def test_reads_standard_input() -> None:
    raw = json.dumps(_legacy_ri_response())
    result = CliRunner().invoke(crd_app, ["explain", "-", "--json"], input=raw)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["source"] == "standard input"


def _run(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["fhir-pa", "crd", *args])
    return cli_errors.run(app)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<html>Bad gateway</html>", "fhir-pa: invalid-response error: bad.json is not JSON (it looks like HTML or "
                                     "XML): Expecting value at line 1 column 1 (at $)\n"),
        ('{"systemActions": []}', "fhir-pa: invalid-response error: bad.json has no 'cards' (required in a CDS "
                                  "Hooks response) (at $.cards)\n"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(content: str, message: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "bad.json", content)
    assert _run(monkeypatch, "explain", str(path), "--json") == cli_errors.EXIT_CODES["invalid-response"]
    captured = capsys.readouterr()
    assert captured.err == message and captured.out == ""


def test_missing_file_is_an_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(monkeypatch, "explain", str(tmp_path / "nowhere.json")) == cli_errors.EXIT_CODES["input"]
    err = capsys.readouterr().err
    assert err.startswith("fhir-pa: input error: cannot read response file") and "Traceback" not in err


def test_the_command_is_registered_on_the_main_app(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = fixture_path("crd", "CRDServiceResponse3.json")
    assert _run(monkeypatch, "explain", str(path), "--json") == 0
    (order,) = json.loads(capsys.readouterr().out)["orders"]
    assert (order["order"], order["covered"], order["pa_needed"]) == ("CommunicationRequest/example", "covered",
                                                                       "no-auth")

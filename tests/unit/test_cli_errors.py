"""Bad command lines end in a usage message and exit 2, never a traceback."""

from __future__ import annotations

import sys

import pytest

from fhir_pa.cli import errors as cli_errors
from fhir_pa.cli.main import app


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["submit", "--bogus"], "No such option"),
        (["pas", "nonexistent"], "No such command"),
        (["submit"], "Missing argument"),
    ],
)
def test_usage_errors_are_one_message_and_exit_2(
    argv: list[str], needle: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["fhir-pa", *argv])
    code = cli_errors.run(app)
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err
    assert "Traceback" not in err

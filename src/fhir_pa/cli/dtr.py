"""``fhir-pa dtr ...``: DTR commands (evaluate a payer's ELM, populate a questionnaire package)."""

from __future__ import annotations

import typer

dtr_app = typer.Typer(help="DTR: run a payer's documentation logic (ELM, FHIRPath) against a chart.",
                      no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(dtr_app, name="dtr")

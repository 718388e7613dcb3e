"""``fhir-pa crd ...``: CRD commands (check an order against a payer's CDS Hooks service, explain a response)."""

from __future__ import annotations

import typer

crd_app = typer.Typer(help="CRD: ask a payer's CDS Hooks service about an order; explain its answer.",
                      no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(crd_app, name="crd")

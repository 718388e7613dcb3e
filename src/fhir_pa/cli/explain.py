"""``fhir-pa pas explain``: the decision in any PAS response Bundle, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fhir_pa.errors import InputError
from fhir_pa.pas.decision import decision_as_json, parse_response


def register(pas_app: typer.Typer) -> None:
    pas_app.command("explain")(explain)


def explain(
    response_file: Annotated[Path, typer.Argument(help="A PAS response Bundle (or notification, or $inquire output).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Explain the payer's decision in a PAS response."""
    try:
        raw = response_file.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {response_file}: {exc.strerror or type(exc).__name__}") from None
    decision = parse_response(raw, source=str(response_file.name))
    if as_json:
        typer.echo(json.dumps(decision_as_json(decision), indent=2))
        return
    console = Console()
    console.print(f"status: [bold]{decision.status.value}[/bold]"
                  + (f"  preauth {decision.preauth_ref}" if decision.preauth_ref else ""))
    table = Table("item", "action", "status", "auth number", "authorized")
    for item in decision.items:
        authorized = "; ".join(",".join(c.code or "?" for c in a.product_or_service) for a in item.authorized)
        table.add_row(str(item.sequence), item.review_action or "-", item.status.value, item.auth_number or "-",
                      authorized or "-")
    console.print(table)
    for error in decision.errors:
        console.print(f"error {error.code}: {error.path or error.element or ''}")

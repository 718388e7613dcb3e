"""``fhir-pa submit`` (send an order file) and ``fhir-pa status`` (what the ledger knows)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fhir_pa.cli.options import (
    DEFAULT_LEDGER,
    ClientId,
    JsonFlag,
    KeyFile,
    LedgerPath,
    PayerUrl,
    Scopes,
    TokenEndpoint,
    open_ledger,
    pas_session,
    payer_config,
)
from fhir_pa.ledger.store import Ledger
from fhir_pa.pas.decision import decision_as_json
from fhir_pa.pas.order import load_order


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
    app.command("status")(status)


def submit(
    order_file: Annotated[Path, typer.Argument(help="Order JSON file (format in the README).")],
    payer: PayerUrl,
    client_id: ClientId,
    key: KeyFile,
    token_endpoint: TokenEndpoint = None,
    scope: Scopes = None,
    ledger: LedgerPath = DEFAULT_LEDGER,
    as_json: JsonFlag = False,
) -> None:
    """Submit one order to a payer with Claim/$submit and print its decision."""
    order = load_order(order_file)
    with pas_session(payer_config(payer, client_id, key, token_endpoint, scope), ledger) as (client, _):
        result = client.submit(order)
    view = {"order_id": result.order_id, "record_id": result.record_id, "sent": result.sent,
            **decision_as_json(result.decision)}
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    console = Console()
    console.print(f"order {result.order_id}: [bold]{result.decision.status.value}[/bold]"
                  + (f"  preauth {result.decision.preauth_ref}" if result.decision.preauth_ref else "")
                  + ("" if result.sent else "  (from the ledger; nothing sent)"))
    table = Table("item", "action", "status", "auth number")
    for item in result.decision.items:
        table.add_row(str(item.sequence), item.review_action or "-", item.status.value, item.auth_number or "-")
    console.print(table)


def status_rows(store: Ledger) -> list[dict[str, str | None]]:
    return [{"record_id": r.id, "order_id": r.order_id, "state": r.state, "urgency": r.urgency,
             "preauth_ref": r.preauth_ref, "submitted_at": r.submitted_at.isoformat() if r.submitted_at else None,
             "clock": r.time_left(), "error": r.error} for r in store.records()]


def status(ledger: LedgerPath = DEFAULT_LEDGER, as_json: JsonFlag = False) -> None:
    """List the requests in the ledger with their state and time left on the CMS decision clock."""
    store = open_ledger(ledger)
    try:
        rows = status_rows(store)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("order", "state", "urgency", "preauth", "CMS clock", "error")
    for row in rows:
        table.add_row(row["order_id"], row["state"], row["urgency"], row["preauth_ref"] or "-", row["clock"],
                      row["error"] or "")
    Console().print(table)

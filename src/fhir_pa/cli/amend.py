"""``fhir-pa update``, ``fhir-pa cancel`` and ``fhir-pa inquire``: act on a request already sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from fhir_pa.cli.options import (
    DEFAULT_LEDGER,
    ClientId,
    JsonFlag,
    KeyFile,
    LedgerPath,
    PayerUrl,
    Scopes,
    TokenEndpoint,
    pas_session,
    payer_config,
)
from fhir_pa.pas.decision import PasDecision, decision_as_json
from fhir_pa.pas.order import load_order
from fhir_pa.pas.submit import SubmitResult

Key = Annotated[str, typer.Argument(help="Ledger record id or order id.")]


def register(app: typer.Typer) -> None:
    app.command("update")(update)
    app.command("cancel")(cancel)
    app.command("inquire")(inquire)


def _print(result: SubmitResult, as_json: bool, what: str) -> None:
    view = {"order_id": result.order_id, "record_id": result.record_id, "sent": result.sent,
            **decision_as_json(result.decision)}
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    note = "" if result.sent else "  (from the ledger; nothing sent)"
    Console().print(f"{what} {result.order_id}: [bold]{result.decision.status.value}[/bold]{note}")


def update(
    order_file: Annotated[Path, typer.Argument(help="The edited order file (same order_id; lines keep sequences).")],
    payer: PayerUrl, client_id: ClientId, key: KeyFile, token_endpoint: TokenEndpoint = None,
    scope: Scopes = None, ledger: LedgerPath = DEFAULT_LEDGER, as_json: JsonFlag = False,
) -> None:
    """Send a Claim Update: the order as it is now, diffed against what the payer last received."""
    order = load_order(order_file)
    with pas_session(payer_config(payer, client_id, key, token_endpoint, scope), ledger) as (client, _):
        result = client.update(order)
    _print(result, as_json, "update")


def cancel(
    request: Key, payer: PayerUrl, client_id: ClientId, key: KeyFile, token_endpoint: TokenEndpoint = None,
    scope: Scopes = None, ledger: LedgerPath = DEFAULT_LEDGER, as_json: JsonFlag = False,
) -> None:
    """Cancel a whole prior-authorization request (a cancel-all Claim Update)."""
    with pas_session(payer_config(payer, client_id, key, token_endpoint, scope), ledger) as (client, _):
        result = client.cancel(request)
    _print(result, as_json, "cancel")


def inquire(
    request: Key, payer: PayerUrl, client_id: ClientId, key: KeyFile, token_endpoint: TokenEndpoint = None,
    scope: Scopes = None, ledger: LedgerPath = DEFAULT_LEDGER, as_json: JsonFlag = False,
) -> None:
    """Ask the payer with Claim/$inquire where a request stands."""
    with pas_session(payer_config(payer, client_id, key, token_endpoint, scope), ledger) as (client, store):
        outcome = client.inquire(request)
        record = store.lookup(request)
    decision: PasDecision | None = outcome.decision
    view: dict[str, object] = {"order_id": record.order_id, "record_id": record.id, "found": decision is not None,
                               "detail": outcome.detail, "state": record.state}
    if decision is not None:
        view.update(decision_as_json(decision))
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    status = decision.status.value if decision is not None else "nothing found"
    Console().print(f"inquiry {record.order_id}: [bold]{status}[/bold] ({outcome.detail})")

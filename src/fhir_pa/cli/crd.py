"""``fhir-pa crd ...``: CRD commands (check an order against a payer's CDS Hooks service, explain a response).

Everything printed from the payer's data goes through ``Text`` so that brackets in JSON paths
(``$.systemActions[0]``) are never taken for Rich markup.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fhir_pa.cli.explain import read_response
from fhir_pa.crd.cards import HookResponse, parse_hook_response
from fhir_pa.crd.decision import OrderCoverage, coverage_decisions
from fhir_pa.crd.explain import explain_json

crd_app = typer.Typer(help="CRD: ask a payer's CDS Hooks service about an order; explain its answer.",
                      no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(crd_app, name="crd")


@crd_app.command("explain")
def explain(
    response_file: Annotated[Path, typer.Argument(
        help="A CDS Hooks response from a CRD service (JSON); - reads stdin.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the explanation as JSON instead of tables.")] = False,
    orders: Annotated[list[str] | None, typer.Option(
        "--order", help="An order sent in the hook (Type/id); repeat. Orders without an answer are flagged.")] = None,
) -> None:
    """Explain a CRD response: coverage, prior auth and documentation per order, then the cards."""
    raw, name = read_response(response_file)
    response = parse_hook_response(raw, source=name)
    decisions = coverage_decisions(response, orders or ())
    if as_json:
        typer.echo(json.dumps(explain_json(response, decisions), indent=2))
        return
    render(response, decisions, Console())


def _text(value: object | None) -> Text:
    return Text("-" if value is None or value == "" or value == () else str(value))


def _join(values: tuple[str, ...]) -> str:
    return ", ".join(values)


def _orders_table(decisions: tuple[OrderCoverage, ...]) -> Table:
    table = Table("order", "covered", "prior auth", "documentation", "questionnaires", "billing codes",
                  "assertion / PA id", "reasons", title="coverage per order")
    for d in decisions:
        ids = _join(d.coverage_assertion_ids) + (f" / PA {_join(d.satisfied_pa_ids)}" if d.satisfied_pa_ids else "")
        docs = _join(d.doc_needed) + (f" ({_join(d.doc_purpose)})" if d.doc_purpose else "")
        reasons = "; ".join(r.text or r.code or "?" for r in d.reasons)
        order = d.order + (f" (for {d.appointment})" if d.appointment else "")
        if not d.from_payer:
            order += " [not from payer]"
        billing = _join(tuple(dict.fromkeys(c.code for i in d.information for c in i.billing_codes if c.code)))
        table.add_row(_text(order), _text(d.covered or ("none sent" if d.origin is None else None)),
                      _text(d.pa_needed), _text(docs), _text(_join(d.questionnaires)), _text(billing), _text(ids),
                      _text(reasons))
    return table


def render(response: HookResponse, decisions: tuple[OrderCoverage, ...], console: Console) -> None:
    """Print the per-order coverage table, the cards table, then issues and reading warnings."""
    if decisions:
        console.print(_orders_table(decisions))
    else:
        console.print(Text("no coverage-information in this response"))
    if response.cards:
        table = Table("indicator", "summary", "source", "type", "links", title="cards")
        for card in response.cards:
            links = "; ".join((f"[SMART] {link.label or link.url}" if link.smart_launch else (link.label or link.url
                              or "?")) for link in card.links)
            table.add_row(_text(card.indicator_raw or card.indicator.value), _text(card.summary),
                          _text(card.source.label), _text(card.card_type), _text(links))
        console.print(table)
    for decision in decisions:
        for issue in decision.issues:
            style = "red" if issue.severity == "error" else "yellow"
            rule = f"[{issue.rule}] " if issue.rule else ""
            where = f" (at {issue.path})" if issue.path and issue.path != decision.order else ""
            console.print(Text(f"{issue.severity}: {decision.order}: {rule}{issue.message}{where}", style=style))
    for warning in response.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))

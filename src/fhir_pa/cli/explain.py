"""``fhir-pa pas explain``: the payer's decision in a PAS response file, as tables or as JSON.

Accepts whatever :func:`fhir_pa.pas.decision.parse_response` does: a response Bundle, a subscription
notification, ``$inquire`` output. Everything printed from the payer's data goes through ``Text`` so that
brackets in FHIRPaths (``Bundle.entry[1]``) are never taken for Rich markup.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fhir_pa.errors import InputError
from fhir_pa.pas.decision import decision_as_json, parse_response
from fhir_pa.pas.decision_types import AuthorizedItem, Coding, PasDecision, Period

STDIN = "-"


def register(pas_app: typer.Typer) -> None:
    pas_app.command("explain")(explain)


def explain(
    response_file: Annotated[Path, typer.Argument(
        help="A PAS response Bundle, subscription notification or $inquire output (JSON); - reads stdin.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON instead of tables.")] = False,
) -> None:
    """Explain the payer's decision in a PAS response: status, each item, errors, requests for information."""
    raw, name = read_response(response_file)
    decision = parse_response(raw, source=name)
    if as_json:
        typer.echo(json.dumps(decision_as_json(decision), indent=2))
        return
    render(decision, Console())


def read_response(path: Path) -> tuple[bytes, str]:
    """The file's bytes and the name to use in messages; InputError when it cannot be read."""
    if str(path) == STDIN:
        return sys.stdin.buffer.read(), "standard input"
    try:
        return path.read_bytes(), path.name
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"cannot read response file {path}: {reason}") from None


def _text(value: object | None) -> Text:
    return Text("-" if value is None or value == "" else str(value))


def _period(period: Period | None) -> str | None:
    if period is None:
        return None
    return f"{period.start or '?'} to {period.end or '?'}"


def _codes(codings: tuple[Coding, ...]) -> str:
    return ", ".join(c.code or c.display or "?" for c in codings)


def _number(auth_number: str | None, reference: str | None) -> str | None:
    """The auth number, else the payer's tracking reference (a pended item has only that)."""
    return auth_number or (f"ref {reference}" if reference else None)


def _authorized(item: AuthorizedItem) -> str:
    parts = [_codes(item.product_or_service) or "?"]
    if item.quantity is not None and item.quantity.value is not None:
        parts.append(f"x{item.quantity.value:g}" + (f" {item.quantity.unit}" if item.quantity.unit else ""))
    if item.review_action:
        parts.append(f"[{item.review_action}]")
    if item.auth_number:
        parts.append(f"#{item.auth_number}")
    return " ".join(parts)


def _headline(decision: PasDecision) -> Text:
    line = Text("decision: ")
    line.append(decision.status.value.upper(), style="bold")
    line.append(" (final)" if decision.final else " (not final)")
    if decision.preauth_ref:
        line.append(f"  preauth {decision.preauth_ref}")
    period = _period(decision.preauth_period)
    if period:
        line.append(f"  valid {period}")
    if decision.outcome:
        line.append(f"  outcome {decision.outcome}")
    return line


def _table(title: str, rows: Sequence[Mapping[str, object]], *, always: tuple[str, ...]) -> Table:
    """A table of ``rows`` without the columns that are empty in every row (narrow terminals)."""
    columns = [c for c in rows[0] if c in always or any(row[c] not in (None, "") for row in rows)]
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(_text(row[c]) for c in columns))
    return table


def render(decision: PasDecision, console: Console) -> None:
    """Print ``decision`` as a headline and one table per kind of content."""
    console.print(_headline(decision))
    if decision.items:
        rows = [{"item": item.sequence, "action": item.review_action, "status": item.status.value,
                 "auth number": _number(item.auth_number, item.administration_reference),
                 "valid": _period(item.validity),
                 "reasons / notes": "; ".join(filter(None, [_codes(item.reason_codes), *item.notes])),
                 "authorized": "; ".join(_authorized(a) for a in item.authorized)}
                for item in decision.items]
        console.print(_table("items", rows, always=("item", "action", "status")))
    if decision.added_items:
        table = Table("for items", "authorized", "valid", title="added items")
        for added in decision.added_items:
            table.add_row(_text(", ".join(map(str, added.item_sequences))), _text(_authorized(added)),
                          _text(_period(added.validity)))
        console.print(table)
    if decision.errors:
        rows = [{"code": f"{e.code} {e.display}" if e.code and e.display else e.code, "path": e.path,
                 "element": e.element, "follow-up": e.followup, "item": e.item_sequence} for e in decision.errors]
        console.print(_table("errors", rows, always=("code", "path")))
    for request in decision.information_requests:
        line = Text("payer asks for more information: ")
        line.append(", ".join(request.codes) or request.reference or "?")
        if request.item_sequences:
            line.append(f" (items {', '.join(map(str, request.item_sequences))})")
        console.print(line)
    for warning in decision.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))

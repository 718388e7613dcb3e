"""``fhir-pa sandbox-orders``: write synthetic batch input for the sandbox payer (a plugin command)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fhir_pa_sandbox.batch_orders import write_sample_orders


def register(app: typer.Typer) -> None:
    app.command("sandbox-orders")(sandbox_orders)


def sandbox_orders(
    out: Annotated[Path, typer.Argument(help="NDJSON file to write.")],
    count: Annotated[int, typer.Option("--count", "-n", min=1, max=1_000_000, help="How many orders.")] = 100,
    prefix: Annotated[str, typer.Option("--prefix", help="Order id prefix (ids are PREFIX-000001, ...).")] = "batch",
    seed: Annotated[int, typer.Option("--seed", help="Random seed for the outcome mix.")] = 1,
) -> None:
    """Write COUNT synthetic orders for the sandbox payer, mixing every outcome its rules give."""
    write_sample_orders(out, count, prefix=prefix, seed=seed)
    typer.echo(f"wrote {count} orders to {out}")

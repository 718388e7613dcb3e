"""``fhir-pa sandbox``: serve the sandbox payer until Ctrl-C (a plugin of the ``fhir_pa.cli`` entry point)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from uvicorn.config import LOGGING_CONFIG

from fhir_pa_sandbox.config import SandboxConfig
from fhir_pa_sandbox.server import SandboxServer


def register(app: typer.Typer) -> None:
    app.command("sandbox")(sandbox)


def _ready(server: SandboxServer) -> None:
    typer.echo(f"fhir-pa sandbox payer listening on {server.base_url}")
    typer.echo(f"  FHIR base:  {server.fhir_base}")
    typer.echo(f"  token URL:  {server.token_url}")
    typer.echo(f"  register a client: POST {server.base_url}/_sandbox/clients  (Ctrl-C to stop)")


def sandbox(
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="Port to listen on (0: any free port).")] = 8080,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    rules: Annotated[Path | None, typer.Option("--rules", help="Decision rules JSON (default: the packaged "
                                                               "data/rules.json).")] = None,
    clients: Annotated[Path | None, typer.Option("--clients", help="Client registrations JSON (default: the "
                                                                   "packaged data/clients.json).")] = None,
    token_lifetime: Annotated[int, typer.Option("--token-lifetime", min=1,
                                                help="Access token lifetime, seconds.")] = 300,
    pend_delay_scale: Annotated[float, typer.Option(
        "--pend-delay-scale", min=0.0,
        help="Multiplies every pend rule's delay before the final decision (0.01: pended requests are decided "
             "a hundred times sooner).")] = 1.0,
) -> None:
    """Serve the sandbox payer (SMART Backend Services + PAS Claim/$submit) until Ctrl-C."""
    if host not in ("127.0.0.1", "::1", "localhost"):
        typer.echo(f"fhir-pa: warning: listening on {host}, not loopback; the /_sandbox endpoints "
                   "still answer loopback callers only", err=True)
    config = SandboxConfig(rules_path=rules, clients_path=clients, token_lifetime=token_lifetime,
                           pend_delay_scale=pend_delay_scale)
    server = SandboxServer(config, host=host, port=port, log_config=LOGGING_CONFIG, log_level="info")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(_ready)
    typer.echo("fhir-pa sandbox payer stopped")

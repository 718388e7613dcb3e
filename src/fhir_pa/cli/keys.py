"""``fhir-pa keys generate``: a signing key pair for SMART Backend Services and CDS Hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fhir_pa.auth.keys import ALGS, generate_key, write_key_pair


def register(keys_app: typer.Typer) -> None:
    keys_app.command("generate")(generate)


def generate(
    out: Annotated[Path, typer.Option("--out", help="Directory for private-key.jwk.json and jwks.json.")],
    alg: Annotated[str, typer.Option("--alg", help="RS384 or ES384.")] = "ES384",
    kid: Annotated[str | None, typer.Option("--kid", help="Key id (default: the key's thumbprint).")] = None,
) -> None:
    """Write a new private key (mode 0600) and its public JWKS to register with payers."""
    if alg not in ALGS:
        raise typer.BadParameter(f"must be one of {', '.join(ALGS)}", param_hint="--alg")
    key = generate_key(alg, kid=kid)
    private_path, public_path = write_key_pair(key, out)
    typer.echo(f"private key: {private_path}")
    typer.echo(f"public JWKS: {public_path}")
    typer.echo(f"kid: {key.kid} ({key.alg})")

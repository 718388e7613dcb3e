"""``fhir-pa keys generate``: a signing key pair for SMART Backend Services and CDS Hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer

from fhir_pa.auth.keys import ALGS, Alg, generate_key, write_key_pair


def register(keys_app: typer.Typer) -> None:
    """Add the ``generate`` command to the ``keys`` sub-app."""
    keys_app.command("generate")(generate)


def _alg(value: str) -> str:
    upper = value.upper()
    if upper not in ALGS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(ALGS)}")
    return upper


def generate(
    out: Annotated[Path, typer.Option("--out", help="Directory for private-key.jwk.json and jwks.json.",
                                      file_okay=False)],
    alg: Annotated[str, typer.Option("--alg", help="RS384 or ES384.", callback=_alg)] = "ES384",
    kid: Annotated[str | None, typer.Option("--kid", help="Key id (default: the key's RFC 7638 thumbprint).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace key files already in --out.")] = False,
) -> None:
    """Write a new private key (mode 0600) and the public JWKS to register with payers."""
    key = generate_key(cast(Alg, alg), kid=kid)  # _alg has checked it
    private_path, public_path = write_key_pair(key, out, overwrite=force)
    typer.echo(f"private key: {private_path}")
    typer.echo(f"public JWKS: {public_path}")
    typer.echo(f"kid: {key.kid} ({key.alg})")

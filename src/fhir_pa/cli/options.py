"""Options several commands share (payer connection, ledger location), declared once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from fhir_pa.config import PAS_SCOPES, PayerConfig
from fhir_pa.ledger.store import DEFAULT_PATH, Ledger
from fhir_pa.pas.submit import PasClient

PayerUrl = Annotated[str, typer.Option("--payer", envvar="FHIR_PA_PAYER", help="Payer FHIR base URL.")]
ClientId = Annotated[str, typer.Option("--client-id", envvar="FHIR_PA_CLIENT_ID",
                                       help="Our client id registered at the payer.")]
KeyFile = Annotated[Path, typer.Option("--key", envvar="FHIR_PA_KEY",
                                       help="Private signing key: PEM, JWK or JWKS file.")]
TokenEndpoint = Annotated[str | None, typer.Option("--token-endpoint", envvar="FHIR_PA_TOKEN_ENDPOINT",
                                                   help="Token URL, when the payer has no SMART discovery.")]
Scopes = Annotated[list[str] | None, typer.Option("--scope", help="Scope to request (repeatable).")]
LedgerPath = Annotated[str, typer.Option("--ledger", envvar="FHIR_PA_LEDGER",
                                          help="Ledger: a SQLite file, or a database URL (postgresql+psycopg://...).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

DEFAULT_LEDGER = str(DEFAULT_PATH)


def payer_config(payer: str, client_id: str, key: Path, token_endpoint: str | None,
                 scopes: list[str] | None) -> PayerConfig:
    return PayerConfig(fhir_base_url=payer, client_id=client_id, key_path=key, token_endpoint=token_endpoint,
                       scopes=tuple(scopes) if scopes else PAS_SCOPES)


def open_ledger(location: Path | str) -> Ledger:
    """The ledger at a SQLite path or a database URL (``postgresql+psycopg://...``)."""
    return Ledger.open(location)


@contextmanager
def pas_session(config: PayerConfig, ledger_path: Path | str) -> Iterator[tuple[PasClient, Ledger]]:
    """A PAS client on the ledger at ``ledger_path``; both are closed on the way out."""
    store = open_ledger(ledger_path)
    try:
        with PasClient(config, ledger=store) as client:
            yield client, store
    finally:
        store.close()

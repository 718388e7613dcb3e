"""Integration fixtures: one real sandbox payer on a loopback port, and a client registered with it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fhir_pa.auth.keys import SigningKey, generate_key, public_jwks, write_key_pair
from fhir_pa.config import PAS_SCOPES, PayerConfig
from fhir_pa.fhir.retry import RetryPolicy
from fhir_pa_sandbox.config import SandboxConfig
from fhir_pa_sandbox.server import SandboxServer

_client_ids = itertools.count()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig()) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset_faults(sandbox: SandboxServer) -> Iterator[None]:
    yield
    httpx.post(f"{sandbox.base_url}/_sandbox/faults", json={"reset": True}).raise_for_status()


@pytest.fixture(scope="session")
def client_key() -> SigningKey:
    return generate_key("ES384")


@pytest.fixture
def payer(sandbox: SandboxServer, client_key: SigningKey, tmp_path: Path) -> PayerConfig:
    """A fresh client registration per test, so token caches and counters never leak between tests."""
    client_id = f"test-client-{next(_client_ids)}"
    private_path, _ = write_key_pair(client_key, tmp_path / "keys")
    sandbox.register_client(client_id, public_jwks(client_key), list(PAS_SCOPES))
    return PayerConfig(fhir_base_url=sandbox.fhir_base, client_id=client_id, key_path=private_path,
                       retry=RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05))


def stats(sandbox: SandboxServer) -> dict[str, object]:
    response = httpx.get(f"{sandbox.base_url}/_sandbox/stats")
    response.raise_for_status()
    data: dict[str, object] = response.json()
    return data


def set_faults(sandbox: SandboxServer, **knobs: object) -> None:
    httpx.post(f"{sandbox.base_url}/_sandbox/faults", json=knobs).raise_for_status()

"""A batch against the loopback sandbox: a registered client, an EHR token, and the ``fhir-pa batch`` command line.

The sandbox runs in the test process; the batch runs as a child process, so a test can kill it with SIGKILL at
any moment and start it again, exactly as an operator would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from fhir_pa.auth.keys import SigningKey, public_jwks, write_key_pair
from fhir_pa.config import PAS_SCOPES
from fhir_pa_sandbox.server import SandboxServer

FHIR_PA = [sys.executable, "-m", "fhir_pa.cli.main"]


@dataclass(frozen=True)
class BatchEnv:
    sandbox: SandboxServer
    client_id: str
    key_path: Path
    ehr_token: str

    def args(self, orders: Path, state: str, *extra: str) -> list[str]:
        base = self.sandbox.base_url
        return [*FHIR_PA, "batch", str(orders), "--payer", self.sandbox.fhir_base, "--client-id", self.client_id,
                "--key", str(self.key_path), "--state", state, "--crd", f"{base}/crd/cds-services",
                "--ehr", f"{base}/ehr/fhir", "--ehr-token", self.ehr_token, "--no-progress",
                "--poll-first", "0.5", "--poll-max", "2", "--poll-rate", "100", *extra]

    def start(self, orders: Path, state: str, *extra: str, log: Path | None = None) -> subprocess.Popen[bytes]:
        out = log.open("ab") if log is not None else subprocess.DEVNULL
        return subprocess.Popen(self.args(orders, state, *extra), stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def run(self, orders: Path, state: str, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.args(orders, state, *extra), capture_output=True, text=True, timeout=timeout,
                              check=False)


def batch_env(sandbox: SandboxServer, key: SigningKey, folder: Path, client_id: str) -> BatchEnv:
    private_path, _ = write_key_pair(key, folder / "keys")
    sandbox.register_client(client_id, public_jwks(key), list(PAS_SCOPES))
    answer = httpx.post(f"{sandbox.base_url}/_sandbox/ehr-token", json={"scopes": ["user/*.rs"], "lifetime": 86_400})
    answer.raise_for_status()
    return BatchEnv(sandbox, client_id, private_path, answer.json()["access_token"])

"""Running the sandbox: real ports, clean stops, async use, the ``fhir-pa sandbox`` command."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import httpx
import pytest

from fhir_pa.errors import ConfigurationError
from fhir_pa_sandbox.config import SandboxConfig
from fhir_pa_sandbox.server import SandboxServer

pytestmark = pytest.mark.integration


def test_port_zero_binds_a_real_port_and_stop_releases_it() -> None:
    with SandboxServer(SandboxConfig()) as first, SandboxServer(SandboxConfig()) as second:
        assert first.port != second.port and first.port > 0
        assert first.base_url == f"http://127.0.0.1:{first.port}"
        assert first.fhir_base == f"{first.base_url}/fhir"
        assert httpx.get(f"{first.fhir_base}/metadata").status_code == 200
        port = second.port
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=2)


def test_a_busy_port_is_a_configuration_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        with pytest.raises(ConfigurationError, match="cannot listen"):
            SandboxServer(SandboxConfig(), port=busy.getsockname()[1]).start()


async def test_async_context_manager_serves_while_the_loop_runs() -> None:
    async with SandboxServer(SandboxConfig()) as server, httpx.AsyncClient() as http:
        response = await http.get(f"{server.fhir_base}/.well-known/smart-configuration")
        assert response.json()["token_endpoint"] == server.token_url


def test_a_bad_rules_file_stops_the_server_before_it_starts(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"default": {"action": "approve"}, "codes": {"72148": {"action": "maybe"}}}))
    with pytest.raises(ConfigurationError) as err:
        SandboxServer(SandboxConfig(rules_path=rules))
    assert str(rules) in str(err.value) and '$.codes["72148"].action' in str(err.value)


def test_cli_plugin_is_registered_under_the_entry_point() -> None:
    [plugin] = [ep for ep in entry_points(group="fhir_pa.cli") if ep.name == "sandbox"]
    assert plugin.value == "fhir_pa_sandbox.cli:register"
    from fhir_pa_sandbox.cli import register

    assert plugin.load() is register


_RUN_CLI = ("import typer; from fhir_pa_sandbox.cli import register; app = typer.Typer(); "
            "app.callback()(lambda: None); register(app); app()")


def test_sandbox_command_serves_until_interrupted(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"default": {"action": "pend"}}))
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUN_CLI, "sandbox", "--port", "0", "--rules", str(rules), "--token-lifetime", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        [fhir_base] = [line.split()[-1] for line in lines if "FHIR base" in line]
        assert fhir_base.startswith("http://127.0.0.1:") and fhir_base.endswith("/fhir")
        assert httpx.get(f"{fhir_base}/metadata", timeout=5).status_code == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err


def test_sandbox_command_reports_a_bad_clients_file_in_one_line(tmp_path: Path) -> None:
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps({"clients": {"me": {"jwks": {"keys": []}, "scopes": ["system/Claim.c"]}}}))
    script = ("import sys; from fhir_pa.errors import FhirPaError; import typer; "
              "from fhir_pa_sandbox.cli import register; app = typer.Typer(); app.callback()(lambda: None); "
              "register(app)\ntry:\n    app(standalone_mode=False)\nexcept FhirPaError as e:\n"
              "    print(e.one_line(), file=sys.stderr); sys.exit(4)")
    proc = subprocess.run([sys.executable, "-c", script, "sandbox", "--port", "0", "--clients", str(clients)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 4
    assert str(clients) in proc.stderr and '$.clients.me.jwks' in proc.stderr

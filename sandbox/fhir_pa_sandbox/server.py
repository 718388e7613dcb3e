"""Run the sandbox payer with uvicorn on a real loopback port, in a background thread or in the foreground.

Serving is :class:`fhir_pa.serve.AppServer`'s (the socket is bound before uvicorn starts, so ``port=0`` yields
the port actually bound, and ``start`` returns once connections are accepted). The app's lifespan starts the
scheduler (pended decisions, notifications) and stopping ends it, so no scheduled work outlives the server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fhir_pa.serve import AppServer
from fhir_pa_sandbox.app import create_app
from fhir_pa_sandbox.clients import registration
from fhir_pa_sandbox.config import SandboxConfig
from fhir_pa_sandbox.state import SandboxState


class SandboxServer(AppServer):
    """One sandbox payer on ``host:port`` (port 0: any free port); a sync or async context manager."""

    def __init__(self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0, *,
                 log_config: Mapping[str, Any] | None = None, log_level: str = "warning") -> None:
        self.config = config or SandboxConfig()
        super().__init__(create_app(self.config), host, port, name="fhir-pa-sandbox", log_config=log_config,
                         log_level=log_level, lifespan="on")

    @property
    def fhir_base(self) -> str:
        return f"{self.base_url}/fhir"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/auth/token"

    @property
    def state(self) -> SandboxState:
        state: SandboxState = self.app.state.sandbox
        return state

    # --- run-time control -------------------------------------------------------------------------

    def register_client(self, client_id: str, jwks: Mapping[str, Any], scopes: Sequence[str]) -> None:
        """Register (or replace) a client; :class:`ConfigurationError` if the JWKS or scopes are unusable."""
        self.state.clients.register(registration(client_id, jwks, list(scopes)))

    def stats(self) -> dict[str, Any]:
        return self.state.stats.snapshot()

    def set_faults(self, **knobs: Any) -> None:
        """Same as ``POST /_sandbox/faults`` with ``knobs`` as the JSON body."""
        self.state.apply_faults(knobs)

    def stopped(self) -> None:
        self.state.stop()  # the lifespan stops it too; this covers a forced exit

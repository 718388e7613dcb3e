"""The sandbox payer as an ASGI application (Starlette): routes and the state behind them.

- ``GET /fhir/.well-known/smart-configuration``: SMART discovery
- ``POST /auth/token``: client_credentials grant with a private_key_jwt client assertion
- ``GET /fhir/metadata``: CapabilityStatement
- ``POST /fhir/Claim/$submit``: PAS request Bundle in, PAS response Bundle out
- ``GET /fhir/ClaimResponse/{id}``: a stored ClaimResponse
- ``GET /_sandbox/stats``, ``GET|POST /_sandbox/faults``, ``POST /_sandbox/clients``: test knobs (loopback only)
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fhir_pa_sandbox import admin, capability, oauth, submit
from fhir_pa_sandbox.clients import ClientRegistry, load_clients
from fhir_pa_sandbox.config import SandboxConfig
from fhir_pa_sandbox.outcome import refuse
from fhir_pa_sandbox.rules import load_rules
from fhir_pa_sandbox.state import SandboxState
from fhir_pa_sandbox.tokens import TokenStore


async def _fhir_not_found(request: Request) -> Response:
    return refuse(404, "not-supported", f"this payer does not offer {request.method} {request.url.path}")


def create_state(config: SandboxConfig) -> SandboxState:
    """Load the rules and client files named by ``config`` (ConfigurationError if either is wrong)."""
    return SandboxState(config=config, rules=load_rules(config.rules_path),
                        clients=ClientRegistry(load_clients(config.clients_path)),
                        tokens=TokenStore(config.clock))


def create_app(config: SandboxConfig | None = None, *, state: SandboxState | None = None) -> Starlette:
    """The sandbox payer app; its :class:`SandboxState` is ``app.state.sandbox``."""
    routes = [
        Route("/fhir/.well-known/smart-configuration", oauth.smart_configuration, methods=["GET"]),
        Route("/auth/token", oauth.token_endpoint, methods=["POST"]),
        Route("/fhir/metadata", capability.metadata, methods=["GET"]),
        Route("/fhir/Claim/$submit", submit.submit, methods=["POST"]),
        Route("/fhir/ClaimResponse/{id:str}", submit.read_claim_response, methods=["GET"]),
        Route("/fhir/{rest:path}", _fhir_not_found,
              methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/_sandbox/stats", admin.stats, methods=["GET"]),
        Route("/_sandbox/faults", admin.faults, methods=["GET", "POST"]),
        Route("/_sandbox/clients", admin.register_client, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = state or create_state(config or SandboxConfig())
    return app

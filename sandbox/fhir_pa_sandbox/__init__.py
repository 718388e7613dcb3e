"""fhir-pa sandbox payer: a local PAS 2.2.1 payer for tests, demos and development.

SMART Backend Services token endpoint, ``Claim/$submit`` decided by an editable rules table (pended items
decided later; Claim Updates and cancels), ClaimResponse read and search, ``Claim/$inquire``, PAS
Subscriptions with rest-hook notifications, and test knobs (stats, injected faults, ``decide-pending``). The
full HTTP contract is in :mod:`fhir_pa_sandbox.app`. Start one on a free loopback port::

    from fhir_pa_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig()) as payer:
        payer.register_client("my-ehr", public_jwks, ["system/Claim.c", "system/ClaimResponse.r"])
        ...  # talk to payer.fhir_base

This package imports :mod:`fhir_pa`; the client library never imports it.
"""

from fhir_pa_sandbox.app import create_app, create_state
from fhir_pa_sandbox.clients import ClientRegistration, ClientRegistry, load_clients
from fhir_pa_sandbox.config import SandboxConfig
from fhir_pa_sandbox.rules import Rule, RulesTable, load_rules
from fhir_pa_sandbox.server import SandboxServer
from fhir_pa_sandbox.state import SandboxState

__all__ = [
    "ClientRegistration",
    "ClientRegistry",
    "Rule",
    "RulesTable",
    "SandboxConfig",
    "SandboxServer",
    "SandboxState",
    "create_app",
    "create_state",
    "load_clients",
    "load_rules",
]

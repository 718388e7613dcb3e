"""How one sandbox payer is set up: its rules and client files, token lifetime, and clock.

The defaults are the editable data files shipped beside the code (``data/rules.json`` and
``data/clients.json``); the CLI's ``--rules`` and ``--clients`` point elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

#: Scopes the sandbox advertises in its SMART configuration (SMART v2 syntax).
DEFAULT_SCOPES: tuple[str, ...] = (
    "system/Claim.c",
    "system/Claim.cruds",
    "system/ClaimResponse.r",
    "system/ClaimResponse.rs",
    "system/Subscription.c",
    "system/Subscription.cruds",
    "system/Questionnaire.r",
    "system/Questionnaire.rs",
)


def packaged_data(name: str) -> Traversable:
    """A data file shipped with the package (``rules.json``, ``clients.json``)."""
    return files("fhir_pa_sandbox").joinpath("data", name)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything one sandbox payer needs; every field has a working default."""

    #: Decision rules; None means the packaged ``data/rules.json``.
    rules_path: Path | None = None
    #: Client registrations; None means the packaged ``data/clients.json``.
    clients_path: Path | None = None
    #: Seconds an access token stays valid (SMART recommends at most 300).
    token_lifetime: int = 300
    #: Longest ``exp - now`` accepted on a client assertion (SMART: five minutes).
    max_assertion_lifetime: int = 300
    #: Clock skew tolerated when checking assertion times.
    leeway: int = 60
    scopes_supported: tuple[str, ...] = DEFAULT_SCOPES
    #: Run the PAS request checks on every ``$submit`` (turn off to let a bad Bundle through to the rules).
    check_requests: bool = True
    #: Largest ``$submit`` body accepted, in bytes.
    max_body_bytes: int = 10_000_000
    #: Multiplies every pend rule's ``after_seconds`` (tests use small values, or huge ones plus
    #: ``POST /_sandbox/decide-pending`` to decide exactly when they want).
    pend_delay_scale: float = 1.0
    #: Seconds since the epoch; tests replace it to age tokens without sleeping.
    clock: Callable[[], float] = time.time

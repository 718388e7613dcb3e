"""Who may ask the sandbox for tokens: client ids, their public JWKS, and the scopes they may get.

Registrations come from a JSON file people edit (``data/clients.json`` by default)::

    {"clients": {"my-ehr": {"jwks": {"keys": [...]}, "scopes": ["system/Claim.c", "system/ClaimResponse.r"]},
                 "other":  {"jwks_path": "keys/jwks.json", "scopes": ["system/Claim.c"]}}}

``jwks_path`` is relative to the clients file. Clients can also be added while the server runs (the
``SandboxServer.register_client`` method and ``POST /_sandbox/clients``). Only public keys are accepted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, cast

from joserfc.errors import JoseError
from joserfc.jwk import KeySet, KeySetSerialization

from fhir_pa.errors import ConfigurationError
from fhir_pa_sandbox.config import packaged_data
from fhir_pa_sandbox.jsonfile import JsonFile, child
from fhir_pa_sandbox.scopes import parse_scope

#: JWK members that only a private key has; their presence means the wrong half was registered.
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


@dataclass(frozen=True)
class ClientRegistration:
    client_id: str
    jwks: Mapping[str, Any]
    scopes: tuple[str, ...]


def jwks_problem(jwks: Any) -> tuple[str, str] | None:
    """What is wrong with a public JWKS, as (relative JSON path, message); None when it is usable."""
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        return "", 'must be a JWKS object with a non-empty "keys" list'
    for index, key in enumerate(jwks["keys"]):
        where = f".keys[{index}]"
        if not isinstance(key, Mapping):
            return where, "must be a JWK object"
        if any(member in key for member in _PRIVATE_MEMBERS):
            return where, "is a private (or symmetric) key; register only the public key"
        if not isinstance(key.get("kid"), str) or not key["kid"]:
            return f"{where}.kid", "every key needs a kid (SMART Backend Services)"
    try:
        KeySet.import_key_set(cast(KeySetSerialization, dict(jwks)))
    except (JoseError, ValueError, TypeError) as exc:
        return "", f"is not a usable JWKS ({type(exc).__name__}: {exc})"
    return None


def scopes_problem(scopes: Any) -> tuple[str, str] | None:
    """What is wrong with a registered scope list, as (relative JSON path, message)."""
    if not isinstance(scopes, list) or not scopes:
        return "", "must be a non-empty list of SMART scopes"
    for index, scope in enumerate(scopes):
        if not isinstance(scope, str) or parse_scope(scope) is None:
            return f"[{index}]", "is not a SMART scope such as system/Claim.c"
    return None


def registration(client_id: Any, jwks: Any, scopes: Any) -> ClientRegistration:
    """A validated registration, or :class:`ConfigurationError` saying which part is wrong."""
    if not isinstance(client_id, str) or not client_id.strip():
        raise ConfigurationError("client_id must be a non-empty string", path="client_id")
    problem = jwks_problem(jwks)
    if problem:
        raise ConfigurationError(f"jwks {problem[1]}", path=f"jwks{problem[0]}")
    problem = scopes_problem(scopes)
    if problem:
        raise ConfigurationError(f"scope {problem[1]}", path=f"scopes{problem[0]}")
    return ClientRegistration(client_id, dict(jwks), tuple(scopes))


class ClientRegistry:
    """Registrations by client id; safe to update from another thread while the server runs."""

    def __init__(self, registrations: Iterable[ClientRegistration] = ()) -> None:
        self._lock = threading.Lock()
        self._clients = {reg.client_id: reg for reg in registrations}

    def register(self, reg: ClientRegistration) -> None:
        """Add or replace a client."""
        with self._lock:
            self._clients[reg.client_id] = reg

    def get(self, client_id: str) -> ClientRegistration | None:
        with self._lock:
            return self._clients.get(client_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)


def _parse(file: JsonFile, base: Path | None) -> list[ClientRegistration]:
    root = file.obj(file.data, "$", allowed={"about", "clients"}, required=("clients",))
    clients = file.obj(root["clients"], "$.clients")
    found: list[ClientRegistration] = []
    for client_id, value in clients.items():
        where = child("$.clients", client_id)
        raw = file.obj(value, where, allowed={"jwks", "jwks_path", "scopes"}, required=("scopes",))
        if ("jwks" in raw) == ("jwks_path" in raw):
            raise file.error("give exactly one of jwks (inline) or jwks_path", where)
        if "jwks" in raw:
            jwks, jwks_where = raw["jwks"], child(where, "jwks")
        else:
            jwks_where = child(where, "jwks_path")
            relative = Path(file.text(raw["jwks_path"], jwks_where))
            if base is None and not relative.is_absolute():
                raise file.error("jwks_path must be absolute in the packaged clients file", jwks_where)
            try:
                jwks = JsonFile(relative if relative.is_absolute() else (base or Path()) / relative).data
            except ConfigurationError as exc:
                raise file.error(f"jwks_path: {exc.message}", jwks_where) from exc
        problem = jwks_problem(jwks)
        if problem:
            raise file.error(f"jwks {problem[1]}", jwks_where + problem[0])
        problem = scopes_problem(raw["scopes"])
        if problem:
            raise file.error(f"scope {problem[1]}", child(where, "scopes") + problem[0])
        found.append(ClientRegistration(client_id, dict(jwks), tuple(raw["scopes"])))
    return found


def load_clients(path: Path | None = None) -> list[ClientRegistration]:
    """Registrations from a clients file; None loads the packaged ``data/clients.json``."""
    source: Path | Traversable = path if path is not None else packaged_data("clients.json")
    name = str(path) if path is not None else "fhir_pa_sandbox/data/clients.json"
    return _parse(JsonFile(source, name), path.parent if path is not None else None)

"""One-time signed JWTs: SMART client assertions and, with another audience, CDS Hooks client JWTs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from joserfc import jwt

from fhir_pa.auth.keys import SigningKey

#: SMART caps an assertion's life at five minutes.
MAX_LIFETIME = 300


def client_assertion(key: SigningKey, *, client_id: str, audience: str, lifetime: int = MAX_LIFETIME,
                     now: float | None = None, jku: str | None = None,
                     extra_claims: Mapping[str, Any] | None = None) -> str:
    """Sign a fresh assertion: iss = sub = ``client_id``, aud = ``audience`` (a string), a new jti each call."""
    issued = int(now if now is not None else time.time())
    header: dict[str, Any] = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
    if jku:
        header["jku"] = jku
    claims: dict[str, Any] = dict(extra_claims or {})
    claims.update({"iss": client_id, "sub": client_id, "aud": audience, "iat": issued,
                   "exp": issued + min(lifetime, MAX_LIFETIME), "jti": uuid.uuid4().hex})
    return jwt.encode(header, claims, key.key, algorithms=[key.alg])

"""Who we are to a CRD service: the key that signs our CDS Hooks client JWTs, and the issuer it was registered as.

CDS Hooks wants a fresh JWT on *every* call, discovery included: ``aud`` is the exact URL called, ``exp`` a few
minutes out, a unique ``jti``, and ``kid`` naming a key in our published JWKS (notes/crd.md §1.5). The JWT is
signed with the same code as SMART client assertions, only with another audience.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_pa.auth.assertion import MAX_LIFETIME, client_assertion
from fhir_pa.auth.keys import SigningKey, public_jwks
from fhir_pa.errors import ConfigurationError


@dataclass(frozen=True)
class CdsClientIdentity:
    """Our CDS client identity at one payer: ``issuer`` is the ``iss`` the payer allowlisted for our JWKS."""

    key: SigningKey
    issuer: str
    #: Where our JWKS is published (sent as the JWT header ``jku``); None when it was exchanged out of band.
    jku: str | None = None
    #: Seconds a JWT is valid; CDS Hooks asks for minutes at most, we cap at five.
    lifetime: int = 60
    #: Optional ``tenant`` claim naming the healthcare organization.
    tenant: str | None = None

    def __post_init__(self) -> None:
        if not self.issuer.strip():
            raise ConfigurationError("the CDS client issuer (iss) must not be empty")
        if not 0 < self.lifetime <= MAX_LIFETIME:
            raise ConfigurationError(f"the CDS client JWT lifetime must be 1 to {MAX_LIFETIME} seconds")

    def jwt(self, audience: str, *, now: float | None = None) -> str:
        """A fresh client JWT for a call to ``audience`` (the exact service or discovery URL)."""
        extra = {"tenant": self.tenant} if self.tenant else None
        return client_assertion(self.key, client_id=self.issuer, audience=audience, lifetime=self.lifetime,
                                now=now, jku=self.jku, extra_claims=extra)

    def jwks(self) -> dict[str, Any]:
        """The public JWKS to publish (every key has ``kid`` and ``alg``, as Inferno requires)."""
        return public_jwks(self.key)


__all__ = ["CdsClientIdentity"]

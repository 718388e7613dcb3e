"""``fhirAuthorization``: the short-lived, narrowly scoped token that lets the payer read back into our EHR.

The EHR's own authorization server issues it; the library asks a :class:`TokenIssuer` for one per hook call,
with only the scopes the service's prefetch templates need (CRD found-21: SHALL narrow; found-22: SHOULD live
at most 30 s). Tokens are never logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fhir_pa.errors import ConfigurationError

#: Read access the payer always needs to make sense of an order, whatever the templates say.
BASE_RESOURCES: tuple[str, ...] = ("Patient", "Coverage")
DEFAULT_LIFETIME = 30
_TYPE = re.compile(r"^\s*([A-Z][A-Za-z]+)(?:[/?]|$)")


@dataclass(frozen=True)
class FhirAuthorization:
    access_token: str
    expires_in: int
    scope: str
    #: The CRD service's client id at our authorization server.
    subject: str
    patient: str | None = None
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret

    def __post_init__(self) -> None:
        if not self.access_token or self.expires_in <= 0 or not self.scope.strip() or not self.subject:
            raise ConfigurationError("fhirAuthorization needs access_token, a positive expires_in, scope and subject")

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"access_token": self.access_token, "token_type": self.token_type,
                                "expires_in": self.expires_in, "scope": self.scope, "subject": self.subject}
        if self.patient:
            body["patient"] = self.patient
        return body

    def __repr__(self) -> str:  # the token itself never reaches a log line
        return f"FhirAuthorization(scope={self.scope!r}, expires_in={self.expires_in}, subject={self.subject!r})"


class TokenIssuer(Protocol):
    """The EHR side of the bargain: mint a token for the payer's CRD service."""

    def issue(self, *, scopes: Sequence[str], patient_id: str | None, lifetime: int) -> FhirAuthorization: ...


@dataclass(frozen=True)
class StaticTokenIssuer:
    """Hands out one token an administrator obtained beforehand (for the CLI and for tests).

    It cannot narrow the token's rights; ``scope`` says what the token really allows.
    """

    token: str
    scope: str
    subject: str
    lifetime: int = DEFAULT_LIFETIME

    def issue(self, *, scopes: Sequence[str], patient_id: str | None, lifetime: int) -> FhirAuthorization:
        return FhirAuthorization(access_token=self.token, expires_in=min(lifetime, self.lifetime), scope=self.scope,
                                 subject=self.subject, patient=patient_id)

    def __repr__(self) -> str:
        return f"StaticTokenIssuer(scope={self.scope!r}, subject={self.subject!r})"


def resource_types(templates: Mapping[str, str]) -> tuple[str, ...]:
    """The FHIR resource types a service's prefetch templates read (``Type/...`` or ``Type?...``)."""
    found: dict[str, None] = {}
    for template in templates.values():
        match = _TYPE.match(template)
        if match:
            found[match.group(1)] = None
    return tuple(found)


def scopes_for(templates: Mapping[str, str], *, patient_context: bool = False,
               extra: Iterable[str] = ()) -> tuple[str, ...]:
    """SMART v2 read/search scopes for exactly what the templates touch (plus Patient and Coverage)."""
    prefix = "patient" if patient_context else "user"
    types = dict.fromkeys([*BASE_RESOURCES, *resource_types(templates), *extra])
    return tuple(f"{prefix}/{name}.rs" for name in types)


__all__ = ["DEFAULT_LIFETIME", "FhirAuthorization", "StaticTokenIssuer", "TokenIssuer", "resource_types",
           "scopes_for"]

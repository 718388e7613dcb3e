"""Access tokens from a SMART token endpoint: parse the answer, know when it goes stale."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from fhir_pa.errors import TokenError


@dataclass(frozen=True)
class AccessToken:
    value: str
    token_type: str
    expires_at: float
    scope: tuple[str, ...]

    def is_fresh(self, now: float, leeway: float) -> bool:
        return now < self.expires_at - leeway

    def __repr__(self) -> str:  # never print the token itself
        return f"AccessToken(type={self.token_type!r}, expires_at={self.expires_at}, scope={self.scope})"


def parse_token_response(status: int, body: bytes, *, requested_scopes: Sequence[str],
                         now: float | None = None) -> AccessToken:
    """An :class:`AccessToken`, or :class:`TokenError` with the RFC 6749 error the server gave."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if status >= 400 or not isinstance(data, dict):
        error = data.get("error") if isinstance(data, dict) else None
        description = data.get("error_description") if isinstance(data, dict) else None
        message = "token request refused" if status >= 400 else "token endpoint answered non-JSON"
        raise TokenError(message, status=status, error=error if isinstance(error, str) else None,
                         description=description if isinstance(description, str) else None)
    token, kind, expires_in = data.get("access_token"), data.get("token_type"), data.get("expires_in")
    if not isinstance(token, str) or not token:
        raise TokenError("token response has no access_token", status=status)
    if not isinstance(kind, str) or kind.lower() != "bearer":
        raise TokenError(f"token_type {kind!r} is not bearer", status=status)
    lifetime = float(expires_in) if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) else 300.0
    scope = data.get("scope")
    granted = tuple(scope.split()) if isinstance(scope, str) else tuple(requested_scopes)
    return AccessToken(value=token, token_type="Bearer",  # noqa: S106 - a token type, not a secret
                       expires_at=(now or time.time()) + lifetime, scope=granted)

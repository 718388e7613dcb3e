"""Access tokens from a SMART token endpoint: read the answer, and know when the token goes stale."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir_pa.errors import TokenError

#: Used when a server leaves out ``expires_in`` (SMART requires it and recommends 300 s).
DEFAULT_LIFETIME = 300.0
_JWT_LIKE = re.compile(r"[\w-]{8,}\.[\w-]{8,}\.[\w-]*")
_MAX_DESCRIPTION = 300


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when it stops working. ``repr`` never shows the token itself."""

    value: str = field(repr=False)
    token_type: str
    expires_at: float
    scope: tuple[str, ...]
    #: How long the server said the token lives; renewal never starts before half of it has passed.
    lifetime: float = DEFAULT_LIFETIME

    def is_fresh(self, now: float, leeway: float) -> bool:
        """Whether the token is still worth sending: more than ``leeway`` seconds of life left.

        The margin is capped at half the token's lifetime, so a short-lived token (say 20 s against a 30 s
        leeway) is still used rather than renewed on every request.
        """
        return now < self.expires_at - min(leeway, self.lifetime / 2)


def _text(value: Any) -> str | None:
    """An error field from the server, bounded and with anything JWT-shaped blanked out."""
    if not isinstance(value, str) or not value:
        return None
    cleaned = _JWT_LIKE.sub("[redacted]", value)
    return cleaned if len(cleaned) <= _MAX_DESCRIPTION else cleaned[:_MAX_DESCRIPTION] + "…"


def _lifetime(value: Any, status: int) -> float:
    if value is None:
        return DEFAULT_LIFETIME
    if isinstance(value, str) and value.strip().isdigit():  # seen in the wild: "expires_in": "300"
        value = int(value)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise TokenError("token response has an unusable expires_in", status=status)
    return float(value)


def parse_token_response(status: int, body: bytes, *, requested_scopes: Sequence[str],
                         now: float | None = None) -> AccessToken:
    """An :class:`AccessToken` from a token endpoint's answer, or :class:`TokenError`.

    On a 4xx/5xx the error carries the RFC 6749 ``error`` and ``error_description`` the server gave.
    ``token_type`` is compared case-insensitively (SMART's own example says ``Bearer``). A missing ``scope``
    means the server granted what was asked (RFC 6749 §5.1).
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if status >= 400:
        fields = data if isinstance(data, dict) else {}
        raise TokenError("token request refused", status=status, error=_text(fields.get("error")),
                         description=_text(fields.get("error_description")))
    if not isinstance(data, dict):
        raise TokenError("the token endpoint's answer is not a JSON object", status=status)
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenError("token response has no access_token", status=status)
    kind = data.get("token_type")
    if not isinstance(kind, str) or kind.lower() != "bearer":
        raise TokenError(f"token_type {_text(kind)!r} is not bearer", status=status)
    lifetime = _lifetime(data.get("expires_in"), status)
    scope = data.get("scope")
    granted = tuple(scope.split()) if isinstance(scope, str) else tuple(requested_scopes)
    issued = time.time() if now is None else now
    return AccessToken(value=token, token_type="Bearer",  # noqa: S106 - a token type, not a secret
                       expires_at=issued + lifetime, scope=granted, lifetime=lifetime)

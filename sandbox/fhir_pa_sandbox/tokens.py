"""Access tokens the sandbox has issued: opaque random strings, held in memory until they expire (or a test
knob, :meth:`TokenStore.expire_all`, ends them all early)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class AccessToken:
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float


class TokenRejected(Exception):
    """The bearer token is unknown or expired; ``description`` is safe to send back."""

    def __init__(self, description: str) -> None:
        self.description = description
        super().__init__(description)


class TokenStore:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, AccessToken] = {}

    def issue(self, client_id: str, scopes: Sequence[str], lifetime: int) -> tuple[str, AccessToken]:
        """A fresh token for ``client_id`` with ``scopes``, valid for ``lifetime`` seconds."""
        now = self._clock()
        value = secrets.token_urlsafe(32)
        token = AccessToken(client_id, tuple(scopes), now + lifetime)
        with self._lock:
            self._tokens = {key: held for key, held in self._tokens.items() if held.expires_at > now}
            self._tokens[value] = token
        return value, token

    def expire_all(self) -> int:
        """Make every live token expire now (a test knob); how many did. Later tokens are unaffected."""
        now = self._clock()
        with self._lock:
            live = [key for key, held in self._tokens.items() if held.expires_at > now]
            for key in live:
                self._tokens[key] = replace(self._tokens[key], expires_at=now)
        return len(live)

    def check(self, value: str) -> AccessToken:
        """The live token ``value`` names, or :class:`TokenRejected` saying why not."""
        with self._lock:
            token = self._tokens.get(value)
        if token is None:
            raise TokenRejected("the access token is not one this server issued")
        if token.expires_at <= self._clock():
            raise TokenRejected("the access token has expired")
        return token

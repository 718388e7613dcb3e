"""A fixed bearer token as an ``httpx.Auth``: for EHR reads with a token an administrator or the EHR issued."""

from __future__ import annotations

from collections.abc import Generator

import httpx


class BearerToken(httpx.Auth):
    """Adds ``Authorization: Bearer <token>``; works with sync and async clients. The token is never printed."""

    def __init__(self, token: str) -> None:
        if not token or any(ch in token for ch in " \r\n"):
            raise ValueError("a bearer token is one non-empty word")
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerToken(***)"

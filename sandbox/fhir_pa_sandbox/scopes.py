"""SMART scopes, v1 and v2 forms, and which scope grants which permission.

A registered ``system/Claim.cruds`` covers a requested ``system/Claim.c``; ``.write`` (v1) means c, u and d,
``.read`` means r and s, and ``.*`` means all five. The sandbox grants each requested scope that some
registered scope covers, and a FHIR call is allowed when some granted scope covers what it needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_SCOPE = re.compile(r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]+)\."
                    r"(?P<perms>read|write|\*|c?r?u?d?s?)(?:\?(?P<query>\S+))?$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


@dataclass(frozen=True)
class Scope:
    context: str
    resource: str
    permissions: frozenset[str]
    query: str | None = None

    def covers(self, wanted: Scope) -> bool:
        """True when holding this scope allows everything ``wanted`` allows."""
        if self.context != wanted.context or self.resource not in ("*", wanted.resource):
            return False
        if self.query is not None and self.query != wanted.query:
            return False
        return wanted.permissions <= self.permissions


def parse_scope(text: str) -> Scope | None:
    """The scope ``text`` names, or None for anything that is not a resource scope (``openid``, typos)."""
    match = _SCOPE.match(text)
    if not match or not match.group("perms"):
        return None
    letters = _V1.get(match.group("perms"), match.group("perms"))
    return Scope(match.group("context"), match.group("type"), frozenset(letters), match.group("query"))


def grantable(requested: Iterable[str], registered: Iterable[str]) -> list[str]:
    """The requested scopes (in request order, once each) that some registered scope covers."""
    allowed = [scope for scope in (parse_scope(text) for text in registered) if scope is not None]
    granted: list[str] = []
    for text in requested:
        wanted = parse_scope(text)
        if wanted is not None and text not in granted and any(held.covers(wanted) for held in allowed):
            granted.append(text)
    return granted


def permits(granted: Iterable[str], resource: str, permission: str) -> bool:
    """True when the granted scopes let a system client do ``permission`` (one of cruds) on ``resource``."""
    wanted = Scope("system", resource, frozenset(permission))
    held = (parse_scope(text) for text in granted)
    return any(scope is not None and scope.covers(wanted) for scope in held)

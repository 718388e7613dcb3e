"""What the sandbox payer remembers: each decided request, its response Bundle, and its ClaimResponse.

Kept in memory behind this small class so a persistent store can replace it without touching the handlers.
Requests are keyed by the request Bundle's identifier (``system|value``), the PAS "submitted transaction
identifier": the same key again is a retransmission, never a new request.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def fingerprint(resource: Mapping[str, Any]) -> str:
    """A digest of a resource's content that ignores key order and whitespace."""
    canonical = json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StoredDecision:
    key: str
    fingerprint: str
    #: The Claim's first identifier as ``system|value`` (or None when it had none).
    claim_identifier: str | None
    response: Mapping[str, Any]
    claim_response_id: str


class SubmissionStore:
    """Decided requests by Bundle identifier, and ClaimResponses by id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, StoredDecision] = {}
        self._claim_responses: dict[str, Mapping[str, Any]] = {}

    def find(self, key: str) -> StoredDecision | None:
        with self._lock:
            return self._by_key.get(key)

    def save(self, decision: StoredDecision, claim_response: Mapping[str, Any], *,
             keyed: bool = True) -> None:
        """Keep a new decision; ``keyed=False`` when the request had no identifier (not deduplicated)."""
        with self._lock:
            if keyed:
                self._by_key[decision.key] = decision
            self._claim_responses[decision.claim_response_id] = claim_response

    def claim_response(self, resource_id: str) -> Mapping[str, Any] | None:
        with self._lock:
            return self._claim_responses.get(resource_id)

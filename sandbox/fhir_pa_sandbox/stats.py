"""Counters a test reads from ``GET /_sandbox/stats`` to prove what the payer saw and did.

``by_identifier`` is keyed by request Bundle identifier (``system|value``): ``received`` counts every
``$submit`` of it that reached the handler, ``decided`` the new decisions made (1 at most, unless the same
identifier was reused), ``duplicates`` the retransmissions answered from the store.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

_PER_ID = ("received", "decided", "duplicates", "rejected")


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: Counter[str] = Counter()
        self._per_id: dict[str, Counter[str]] = {}

    def count(self, name: str, identifier: str | None = None) -> None:
        """Add one to counter ``name``, overall and (when given) for one request identifier."""
        with self._lock:
            self._totals[name] += 1
            if identifier is not None and name in _PER_ID:
                self._per_id.setdefault(identifier, Counter())[name] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            totals = self._totals
            return {
                "submissions_received": totals["received"],
                "decisions": totals["decided"],
                "duplicates": totals["duplicates"],
                "rejected": totals["rejected"],
                "tokens_issued": totals["tokens_issued"],
                "token_requests_refused": totals["token_refused"],
                "faults_injected": totals["faults_injected"],
                "claim_response_reads": totals["reads"],
                "by_identifier": {key: {name: counts[name] for name in _PER_ID}
                                  for key, counts in self._per_id.items()},
            }

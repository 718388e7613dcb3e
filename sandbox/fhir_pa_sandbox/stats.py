"""Counters a test reads from ``GET /_sandbox/stats`` to prove what the payer saw and did.

``by_identifier`` is keyed by request Bundle identifier (``system|value``): ``received`` counts every
``$submit`` of it that reached the handler, ``decided`` the new decisions made (1 at most, unless the same
identifier was reused), ``duplicates`` the retransmissions answered from the store, ``decided_later`` the
pended items decided afterwards (by the scheduler or ``POST /_sandbox/decide-pending``),
``updates`` the Claim Updates applied; these two appear only once they are non-zero.

The global counters also say what the payer did on its own: ``notifications_sent`` (event notifications
answered 2xx; a duplicate counts twice), ``notifications_dropped`` (dropped by the fault knob),
``notifications_failed`` (not delivered after 2 attempts: the Subscription went to ``error``),
``handshakes`` (handshakes attempted), and ``inquiries``, ``searches``, ``updates``, ``cancels``. CRD:
``crd_discovery`` and ``crd_hooks`` (calls answered), ``crd_refused`` (requests failing the CRD client checks),
``crd_ehr_reads`` (the service's own reads into the client's EHR with the fhirAuthorization token), and
``crd_hook_instances`` (distinct hookInstance values seen, to prove each call used a fresh one). DTR:
``dtr_packages`` (``$questionnaire-package`` calls answered 200), ``dtr_next_questions`` (``$next-question`` rounds
answered 200) and ``dtr_errors_logged`` (``$log-questionnaire-errors`` calls accepted).

Fault knobs (:mod:`fhir_pa_sandbox.knobs`): ``faults_injected`` counts every call whose answer a knob decided
(``fail_next``, ``garbage_next``, ``error_rate``, ``slow_rate``, ``error_after_rate``); of these,
``answers_delayed`` were processed and answered late (``slow_rate``) and ``answers_replaced`` were processed
and answered with a bare 500 (``error_after_rate``). ``token_expiries`` counts the times every token was made
to expire (``expire_tokens``, ``token_expiry_every``) and ``tokens_expired`` the live tokens that ended so.
``tokens_issued`` and ``token_requests_refused`` count the token endpoint's answers, so a test sees the client
fetch a new token after an expiry.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

_PER_ID = ("received", "decided", "duplicates", "rejected")
#: Per-identifier counters shown only once non-zero (a request that never pended has no ``decided_later``).
_PER_ID_LATER = ("decided_later", "updates")
_GLOBAL = ("decided_later", "notifications_sent", "notifications_dropped", "notifications_failed", "handshakes",
           "inquiries", "searches", "updates", "cancels", "subscriptions_created", "crd_discovery", "crd_hooks",
           "crd_refused", "crd_ehr_reads", "dtr_packages", "dtr_next_questions", "dtr_errors_logged",
           "answers_delayed", "answers_replaced", "token_expiries", "tokens_expired")


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: Counter[str] = Counter()
        self._per_id: dict[str, Counter[str]] = {}
        self._hook_instances: set[str] = set()

    def count(self, name: str, identifier: str | None = None, *, times: int = 1) -> None:
        """Add one (or ``times``) to counter ``name``, overall and (when given) for one request identifier."""
        with self._lock:
            self._totals[name] += times
            if identifier is not None and (name in _PER_ID or name in _PER_ID_LATER):
                self._per_id.setdefault(identifier, Counter())[name] += times
            elif identifier is not None and name == "crd_hooks":
                self._hook_instances.add(identifier)

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
                **{name: totals[name] for name in _GLOBAL},
                "crd_hook_instances": len(self._hook_instances),
                "by_identifier": {key: {**{name: counts[name] for name in _PER_ID},
                                        **{name: counts[name] for name in _PER_ID_LATER if counts[name]}}
                                  for key, counts in self._per_id.items()},
            }

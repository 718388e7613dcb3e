"""Fault injection for tests: make the next FHIR calls fail, answer garbage, or answer slowly.

Driven by ``POST /_sandbox/faults`` with a JSON object (any mix of):

- ``{"fail_next": N, "status": 503}``: the next N FHIR API calls get that status and no body, before any
  other processing (PAS §spec-39: a 5xx has no OperationOutcome). ``"retry_after": S`` adds a Retry-After
  header.
- ``{"garbage_next": N, "garbage": "truncated" | "not-fhir" | "html"}``: the next N calls get a 200 whose body
  is cut-off JSON (default), JSON that is not FHIR, or an HTML page.
- ``{"latency_ms": M}``: every FHIR API call waits M ms first, until reset.
- ``{"crd_latency_ms": M}``: every CRD hook call waits M ms before answering (a slow payer), until reset.
- ``{"error_rate": 0.3, "seed": 7}``: that fraction (0..1) of FHIR API calls get a bare 503, drawn from a
  random generator seeded with ``seed`` (give it for a repeatable run).
- ``{"slow_rate": 0.1, "slow_ms": 3000, "seed": 7}``: that fraction of FHIR API calls are processed normally,
  then their answer is held back ``slow_ms`` (default 3000) before it is sent: a client with a shorter timeout
  gives up *after* the payer acted (the lost answer). Drawn from the same seeded generator.
- ``{"error_after_rate": 0.1}``: that fraction of FHIR API calls are processed normally, then answered with a
  bare 500 instead of their real answer (the payer acted, the answer is lost). Same generator. A call gets at
  most one of these two answer faults: ``slow_rate`` is drawn first, ``error_after_rate`` only for a call not
  slowed. Both apply only to calls that passed the token and scope checks (the ones the payer acts on), and
  ``$submit`` has stored its decision before any answer goes out, so a resend is answered as a duplicate.
- ``{"expire_tokens": true}``: every access token issued so far stops working at once (the next call with one
  gets the usual 401 ``invalid_token``, as for a token past its lifetime: "expired", or "not one this server
  issued" once a later token request has swept it out); tokens issued later work.
- ``{"token_expiry_every": N}``: after every N-th authenticated FHIR API call (one that passed the token and
  scope checks; counted from when the knob is set) every current token expires, that call itself going on
  normally; 0 turns it off.
- ``{"drop_notifications": N}``: the next N event notifications are counted as dropped and never sent.
- ``{"duplicate_notifications": N}``: the next N event notifications are delivered twice.
- ``{"reorder_notifications": N}``: the next N event notifications are each held back and delivered right
  after the event notification that follows them (or after 2 s if none does).
- ``{"notification_shape": "pas-2.2" | "flat-2.0.1" | "ri" | "id-only"}``: where event notifications put the
  PAS response (:mod:`fhir_pa_sandbox.notify`).
- ``{"inquire_shape": "return" | "responseBundle" | "bare"}``: how ``$inquire`` wraps its answers
  (:mod:`fhir_pa_sandbox.inquire`).
- ``{"reset": true}``: back to normal (applied before any other key in the same command).

Where a seeded draw is made, each FHIR API call draws in a fixed order, and only for the knobs that are on:
``error_rate`` before any processing, then ``slow_rate`` and ``error_after_rate`` once the call passed the
token checks; so the same seed and the same sequence of calls give the same faults.

"FHIR API calls" are the ones needing a bearer token (``$submit``, ``$inquire``, ClaimResponse read and
search, Subscription calls, the DTR operations ``$questionnaire-package``, ``$next-question`` and
``$log-questionnaire-errors``); CRD hook calls have their own ``crd_latency_ms``; discovery, ``metadata`` and
the token endpoint are never faulted, so a client always gets far enough to be tested (``expire_tokens`` and
``token_expiry_every`` only make the tokens it already holds stop working). Handshakes are never faulted
either.

Stats (:mod:`fhir_pa_sandbox.stats`): every injected answer counts in ``faults_injected``; held-back answers
also in ``answers_delayed``, replaced ones in ``answers_replaced``; each expiry of all tokens in
``token_expiries`` and the tokens it ended in ``tokens_expired``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from starlette.responses import Response

from fhir_pa_sandbox.notify import SHAPES

GARBAGE_KINDS = ("truncated", "not-fhir", "html")
NOTIFICATION_SHAPES = SHAPES
INQUIRE_SHAPES = ("return", "responseBundle", "bare")
_COUNTS = {"fail_next": (0, 10_000), "status": (400, 599), "retry_after": (0, 3600), "garbage_next": (0, 10_000),
           "latency_ms": (0, 60_000), "seed": (0, 2**63 - 1), "drop_notifications": (0, 10_000),
           "duplicate_notifications": (0, 10_000), "reorder_notifications": (0, 10_000),
           "crd_latency_ms": (0, 60_000), "slow_ms": (0, 60_000), "token_expiry_every": (0, 1_000_000)}
_CHOICES = {"garbage": GARBAGE_KINDS, "notification_shape": NOTIFICATION_SHAPES, "inquire_shape": INQUIRE_SHAPES}
_RATES = ("error_rate", "slow_rate", "error_after_rate")
_FLAGS = ("reset", "expire_tokens")
_KEYS = {*_COUNTS, *_CHOICES, *_RATES, *_FLAGS}
#: How long a slowed answer is held back when the command gives ``slow_rate`` but no ``slow_ms``.
DEFAULT_SLOW_MS = 3000

#: What happens to one event notification: sent, dropped, sent twice, or held until the next one is sent.
Fate = Literal["send", "drop", "duplicate", "hold"]


class KnobError(ValueError):
    """A fault command the sandbox cannot apply; the message says which key is wrong."""


@dataclass(frozen=True)
class Fault:
    """The answer to give instead of processing a call."""

    status: int
    garbage: str | None = None
    retry_after: int | None = None


@dataclass(frozen=True)
class AnswerFault:
    """What to do with the answer of a call that was processed normally: hold it back, or replace it."""

    #: Seconds to hold the real answer back before sending it.
    delay: float = 0.0
    #: Send a bare answer with this status instead of the real one (None: the real answer).
    status: int | None = None


def _count(command: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = command[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise KnobError(f"{key} must be a whole number from {low} to {high}")
    return value


class FaultKnobs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.fail_next = 0
        self.fail_status = 503
        self.retry_after: int | None = None
        self.garbage_next = 0
        self.garbage_kind = "truncated"
        self.latency_ms = 0
        self.crd_latency_ms = 0
        self.error_rate = 0.0
        self.slow_rate = 0.0
        self.slow_ms = DEFAULT_SLOW_MS
        self.error_after_rate = 0.0
        self.token_expiry_every = 0
        self._authenticated_calls = 0
        self.seed: int | None = None
        self._random = random.Random()  # noqa: S311 - fault injection, not security
        self.drop_notifications = 0
        self.duplicate_notifications = 0
        self.reorder_notifications = 0
        self.notification_shape = "pas-2.2"
        self.inquire_shape = "return"

    @staticmethod
    def _validate(command: Any) -> dict[str, Any]:
        if not isinstance(command, Mapping):
            raise KnobError("the fault command must be a JSON object")
        unknown = sorted(set(command) - _KEYS)
        if unknown:
            raise KnobError(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
        for key, choices in _CHOICES.items():
            if key in command and command[key] not in choices:
                raise KnobError(f"{key} must be one of {', '.join(choices)}")
        for key in _FLAGS:
            if key in command and not isinstance(command[key], bool):
                raise KnobError(f"{key} must be true or false")
        values: dict[str, Any] = {key: _count(command, key, *limits) for key, limits in _COUNTS.items()
                                  if key in command}
        values.update({key: command[key] for key in _CHOICES if key in command})
        for key in _RATES:
            if key in command:
                rate = command[key]
                if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
                    raise KnobError(f"{key} must be a number from 0 to 1")
                values[key] = float(rate)
        return values

    def apply(self, command: Any) -> bool:
        """Apply one fault command (see the module docstring); :class:`KnobError` if it is malformed.

        True when the command asks for every token issued so far to expire now (``expire_tokens``): the knobs
        hold no tokens, so the caller (:meth:`fhir_pa_sandbox.state.SandboxState.apply_faults`) does that.
        """
        values = self._validate(command)
        with self._lock:
            if command.get("reset"):
                self._reset()
            renames = {"status": "fail_status", "garbage": "garbage_kind"}
            for key, value in values.items():
                setattr(self, renames.get(key, key), value)
            if "seed" in values:
                self._random = random.Random(values["seed"])  # noqa: S311 - fault injection, not security
            if "token_expiry_every" in values:
                self._authenticated_calls = 0
        return bool(command.get("expire_tokens"))

    def take(self) -> Fault | None:
        """The fault for the call being handled now (used up), or None to process it normally."""
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return Fault(self.fail_status, retry_after=self.retry_after)
            if self.garbage_next > 0:
                self.garbage_next -= 1
                return Fault(200, garbage=self.garbage_kind)
            if self.error_rate and self._random.random() < self.error_rate:
                return Fault(503)
            return None

    def take_answer_fault(self) -> AnswerFault | None:
        """For a call that passed the token checks: what to do with its answer once it is processed, or None."""
        with self._lock:
            if self.slow_rate and self._random.random() < self.slow_rate:
                return AnswerFault(delay=self.slow_ms / 1000)
            if self.error_after_rate and self._random.random() < self.error_after_rate:
                return AnswerFault(status=500)
            return None

    def authenticated_call(self) -> bool:
        """Count one authenticated FHIR API call; True when every current token must expire after it."""
        with self._lock:
            if not self.token_expiry_every:
                return False
            self._authenticated_calls += 1
            return self._authenticated_calls % self.token_expiry_every == 0

    def notification_fate(self) -> Fate:
        """What to do with the event notification about to go out (uses up one count of its knob)."""
        with self._lock:
            if self.drop_notifications > 0:
                self.drop_notifications -= 1
                return "drop"
            if self.duplicate_notifications > 0:
                self.duplicate_notifications -= 1
                return "duplicate"
            if self.reorder_notifications > 0:
                self.reorder_notifications -= 1
                return "hold"
            return "send"

    def shapes(self) -> tuple[str, str]:
        """(notification shape, inquire shape) in force now."""
        with self._lock:
            return self.notification_shape, self.inquire_shape

    def delay_seconds(self) -> float:
        with self._lock:
            return self.latency_ms / 1000

    def crd_delay_seconds(self) -> float:
        with self._lock:
            return self.crd_latency_ms / 1000

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"fail_next": self.fail_next, "status": self.fail_status, "retry_after": self.retry_after,
                    "garbage_next": self.garbage_next, "garbage": self.garbage_kind,
                    "latency_ms": self.latency_ms, "crd_latency_ms": self.crd_latency_ms,
                    "error_rate": self.error_rate, "seed": self.seed, "slow_rate": self.slow_rate,
                    "slow_ms": self.slow_ms, "error_after_rate": self.error_after_rate,
                    "token_expiry_every": self.token_expiry_every,
                    "drop_notifications": self.drop_notifications,
                    "duplicate_notifications": self.duplicate_notifications,
                    "reorder_notifications": self.reorder_notifications,
                    "notification_shape": self.notification_shape, "inquire_shape": self.inquire_shape}


_TRUNCATED = b'{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:'
_NOT_FHIR = b'{"status":"ok","message":"this is not a FHIR resource"}'
_HTML = b"<html><head><title>Gateway</title></head><body><h1>Service unavailable</h1></body></html>"


def fault_response(fault: Fault) -> Response:
    """The answer an injected fault gives: a bare status, or a 200 with an unusable body."""
    if fault.garbage is None:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        return Response(b"", status_code=fault.status, headers=headers)
    if fault.garbage == "html":
        return Response(_HTML, status_code=200, media_type="text/html")
    body = _NOT_FHIR if fault.garbage == "not-fhir" else _TRUNCATED
    return Response(body, status_code=200, media_type="application/fhir+json")

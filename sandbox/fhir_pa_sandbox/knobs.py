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
- ``{"drop_notifications": N}``: the next N event notifications are counted as dropped and never sent.
- ``{"duplicate_notifications": N}``: the next N event notifications are delivered twice.
- ``{"reorder_notifications": N}``: the next N event notifications are each held back and delivered right
  after the event notification that follows them (or after 2 s if none does).
- ``{"notification_shape": "pas-2.2" | "flat-2.0.1" | "ri" | "id-only"}``: where event notifications put the
  PAS response (:mod:`fhir_pa_sandbox.notify`).
- ``{"inquire_shape": "return" | "responseBundle" | "bare"}``: how ``$inquire`` wraps its answers
  (:mod:`fhir_pa_sandbox.inquire`).
- ``{"reset": true}``: back to normal (applied before any other key in the same command).

"FHIR API calls" are the ones needing a bearer token (``$submit``, ``$inquire``, ClaimResponse read and
search, Subscription calls, the DTR operations ``$questionnaire-package``, ``$next-question`` and
``$log-questionnaire-errors``); CRD hook calls have their own ``crd_latency_ms``; discovery, ``metadata`` and
the token endpoint are never faulted, so a client always gets far enough to be tested. Handshakes are never
faulted either.
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
           "crd_latency_ms": (0, 60_000)}
_CHOICES = {"garbage": GARBAGE_KINDS, "notification_shape": NOTIFICATION_SHAPES, "inquire_shape": INQUIRE_SHAPES}
_KEYS = {*_COUNTS, *_CHOICES, "error_rate", "reset"}

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
        if "reset" in command and not isinstance(command["reset"], bool):
            raise KnobError("reset must be true or false")
        rate = command.get("error_rate", 0)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise KnobError("error_rate must be a number from 0 to 1")
        values: dict[str, Any] = {key: _count(command, key, *limits) for key, limits in _COUNTS.items()
                                  if key in command}
        values.update({key: command[key] for key in _CHOICES if key in command})
        if "error_rate" in command:
            values["error_rate"] = float(rate)
        return values

    def apply(self, command: Any) -> None:
        """Apply one fault command (see the module docstring); :class:`KnobError` if it is malformed."""
        values = self._validate(command)
        with self._lock:
            if command.get("reset"):
                self._reset()
            renames = {"status": "fail_status", "garbage": "garbage_kind"}
            for key, value in values.items():
                setattr(self, renames.get(key, key), value)
            if "seed" in values:
                self._random = random.Random(values["seed"])  # noqa: S311 - fault injection, not security

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
                    "error_rate": self.error_rate, "seed": self.seed,
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

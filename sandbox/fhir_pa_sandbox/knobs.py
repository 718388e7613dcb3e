"""Fault injection for tests: make the next FHIR calls fail, answer garbage, or answer slowly.

Driven by ``POST /_sandbox/faults`` with a JSON object (any mix of):

- ``{"fail_next": N, "status": 503}``: the next N FHIR API calls get that status and no body, before any
  other processing (PAS §spec-39: a 5xx has no OperationOutcome). ``"retry_after": S`` adds a Retry-After
  header.
- ``{"garbage_next": N, "garbage": "truncated" | "not-fhir" | "html"}``: the next N calls get a 200 whose body
  is cut-off JSON (default), JSON that is not FHIR, or an HTML page.
- ``{"latency_ms": M}``: every FHIR API call waits M ms first, until reset.
- ``{"reset": true}``: back to normal (applied before any other key in the same command).

"FHIR API calls" are the ones needing a bearer token (``$submit``, ClaimResponse read); discovery,
``metadata`` and the token endpoint are never faulted, so a client always gets far enough to be tested.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

GARBAGE_KINDS = ("truncated", "not-fhir", "html")
_KEYS = {"fail_next", "status", "retry_after", "garbage_next", "garbage", "latency_ms", "reset"}


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

    def apply(self, command: Any) -> None:
        """Apply one fault command (see the module docstring); :class:`KnobError` if it is malformed."""
        if not isinstance(command, Mapping):
            raise KnobError("the fault command must be a JSON object")
        unknown = sorted(set(command) - _KEYS)
        if unknown:
            raise KnobError(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
        if "garbage" in command and command["garbage"] not in GARBAGE_KINDS:
            raise KnobError(f"garbage must be one of {', '.join(GARBAGE_KINDS)}")
        if "reset" in command and not isinstance(command["reset"], bool):
            raise KnobError("reset must be true or false")
        updates = {key: _count(command, key, *limits) for key, limits in (
            ("fail_next", (0, 10_000)), ("status", (400, 599)), ("retry_after", (0, 3600)),
            ("garbage_next", (0, 10_000)), ("latency_ms", (0, 60_000))) if key in command}
        with self._lock:
            if command.get("reset"):
                self._reset()
            self.fail_next = updates.get("fail_next", self.fail_next)
            self.fail_status = updates.get("status", self.fail_status)
            self.retry_after = updates.get("retry_after", self.retry_after)
            self.garbage_next = updates.get("garbage_next", self.garbage_next)
            self.garbage_kind = command.get("garbage", self.garbage_kind)
            self.latency_ms = updates.get("latency_ms", self.latency_ms)

    def take(self) -> Fault | None:
        """The fault for the call being handled now (used up), or None to process it normally."""
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return Fault(self.fail_status, retry_after=self.retry_after)
            if self.garbage_next > 0:
                self.garbage_next -= 1
                return Fault(200, garbage=self.garbage_kind)
            return None

    def delay_seconds(self) -> float:
        with self._lock:
            return self.latency_ms / 1000

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"fail_next": self.fail_next, "status": self.fail_status, "retry_after": self.retry_after,
                    "garbage_next": self.garbage_next, "garbage": self.garbage_kind,
                    "latency_ms": self.latency_ms}


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

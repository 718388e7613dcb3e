"""Send a PAS request with ``Claim/$submit`` and read the decision, sync or async.

The exact bytes are recorded in the ledger before the first send. A 4xx is final and never retried; 5xx,
429 and transport failures are retried with backoff, always resending the *same* bytes (same Bundle and
Claim identifiers), so a payer that already received one copy sees a duplicate, never a second request.
Submitting an order the ledger already holds never builds a new request: a decided one returns the stored
decision, an unfinished one resends its stored bytes.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Self

import httpx

from fhir_pa.auth.keys import load_signing_key
from fhir_pa.auth.smart import SmartBackendAuth
from fhir_pa.config import PayerConfig
from fhir_pa.errors import FhirPaError, LedgerError, PayerRejected, PayerUnavailable, TransportError
from fhir_pa.fhir.outcome import outcome_issues, parse_outcome
from fhir_pa.fhir.retry import RETRYABLE_STATUS, nothing_was_sent
from fhir_pa.ledger.store import RESENDABLE_STATES, Ledger, LedgerRecord, now_utc
from fhir_pa.pas.bundle import PasRequest, build_request_bundle
from fhir_pa.pas.checks import ensure_valid
from fhir_pa.pas.decision import PasDecision, parse_response
from fhir_pa.pas.order import PriorAuthOrder

FHIR_JSON = "application/fhir+json"
HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}


@dataclass(frozen=True)
class SubmitResult:
    """What came of one submission: the ledger record and the payer's decision."""

    record_id: str
    order_id: str
    decision: PasDecision
    #: False when the decision came from the ledger and nothing was sent this time.
    sent: bool


def encode(bundle: dict[str, object]) -> bytes:
    """The wire form of a Bundle: compact UTF-8 JSON, exactly what the ledger stores."""
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def make_auth(payer: PayerConfig) -> SmartBackendAuth:
    """SMART Backend Services auth for ``payer``, with the key loaded from its key file."""
    key = load_signing_key(payer.key_path, kid=payer.key_id)
    return SmartBackendAuth(fhir_base_url=payer.base, client_id=payer.client_id, key=key,
                            scopes=list(payer.scopes), token_endpoint=payer.token_endpoint)


class _Core:
    """The protocol, free of I/O style: prepare, classify the answer, record. Sync and async share it."""

    def __init__(self, payer: PayerConfig, ledger: Ledger) -> None:
        self.payer = payer
        self.ledger = ledger

    def prepare(self, order: PriorAuthOrder, *, check: bool) -> LedgerRecord:
        existing = self.ledger.find(payer=self.payer.base, order_id=order.order_id)
        if existing is not None:
            return existing
        request: PasRequest = build_request_bundle(order, sender=self.payer.sender)
        if check:
            ensure_valid(request.bundle)
        return self.ledger.record_intent(
            order_id=order.order_id, payer=self.payer.base, bundle_identifier=request.bundle_identifier,
            claim_identifier=request.claim_identifier, urgency=order.urgency, body=encode(request.bundle))

    def stored_decision(self, record: LedgerRecord) -> PasDecision | None:
        """The answer already on file for a record that must not be sent again (None: send it).

        A request the payer refused for good raises that refusal again rather than sending it twice.
        """
        if record.state in RESENDABLE_STATES:
            return None
        for exchange in reversed(self.ledger.exchanges(record.id)):
            status = exchange.status_code
            if status is None or exchange.response_body is None:
                continue
            if 200 <= status < 300:
                return parse_response(exchange.response_body, source="stored response")
            if record.state == "rejected":
                outcome = parse_outcome(exchange.response_body)
                raise PayerRejected(status, outcome, outcome_issues(outcome) if outcome else ())
        raise LedgerError(f"request {record.id} is {record.state!r} but no payer answer is on file")

    def on_response(self, record: LedgerRecord, started: datetime, response: httpx.Response) -> PasDecision | None:
        """Record the answer; return a decision, raise a final error, or return None to retry."""
        body = response.content
        self.ledger.record_exchange(record.id, kind="submit", url=self.payer.submit_url, body=record.request_body,
                                    started_at=started, delivery="sent", status_code=response.status_code,
                                    content_type=response.headers.get("content-type"), response_body=body)
        status = response.status_code
        if 200 <= status < 300:
            try:
                decision = parse_response(body, source=f"$submit response from {self.payer.base}")
            except FhirPaError as exc:
                self.ledger.set_state(record.id, "invalid-response", error_code=exc.code, error=exc.one_line())
                raise
            self.ledger.set_state(record.id, decision.status.value, detail=f"HTTP {status}",
                                  preauth_ref=decision.preauth_ref, claim_response_id=decision.claim_response_id)
            return decision
        if status in RETRYABLE_STATUS:
            return None
        outcome = parse_outcome(body)
        error = PayerRejected(status, outcome, outcome_issues(outcome) if outcome else ())
        self.ledger.set_state(record.id, "rejected", detail=f"HTTP {status}", error_code=error.code,
                              error=error.one_line())
        raise error

    def on_transport_error(self, record: LedgerRecord, started: datetime, exc: httpx.TransportError) -> None:
        delivery = "not-sent" if nothing_was_sent(exc) else "unknown"
        self.ledger.record_exchange(record.id, kind="submit", url=self.payer.submit_url, body=record.request_body,
                                    started_at=started, delivery=delivery, error=type(exc).__name__)

    def give_up(self, record: LedgerRecord, last: httpx.Response | None, exc: Exception | None) -> FhirPaError:
        attempts = self.payer.retry.attempts
        error: FhirPaError = (PayerUnavailable(last.status_code, attempts) if last is not None else
                              TransportError(f"could not reach {self.payer.base} in {attempts} attempts "
                                             f"({type(exc).__name__ if exc else 'no answer'})"))
        self.ledger.set_state(record.id, "failed", error_code=error.code, error=error.one_line())
        return error


class PasClient:
    """Synchronous PAS client for one payer. Use as a context manager, or call :meth:`close`."""

    def __init__(self, payer: PayerConfig, *, ledger: Ledger | None = None, http: httpx.Client | None = None,
                 auth: httpx.Auth | None = None, check: bool = True) -> None:
        self.payer = payer
        self.ledger = ledger or Ledger()
        self._core = _Core(payer, self.ledger)
        self._owns_http = http is None
        self.http = http or httpx.Client(timeout=payer.timeout)
        self.auth = auth or make_auth(payer)
        self.check = check

    def submit(self, order: PriorAuthOrder) -> SubmitResult:
        """Submit ``order`` (once: see the module docstring) and return the payer's decision."""
        record = self._core.prepare(order, check=self.check)
        stored = self._core.stored_decision(record)
        if stored is not None:
            return SubmitResult(record.id, record.order_id, stored, sent=False)
        return SubmitResult(record.id, record.order_id, self._send(record), sent=True)

    def _send(self, record: LedgerRecord) -> PasDecision:
        core, policy = self._core, self.payer.retry
        last: httpx.Response | None = None
        failure: Exception | None = None
        self.ledger.set_state(record.id, "sending")
        for attempt in range(1, policy.attempts + 1):
            started = now_utc()
            try:
                response = self.http.post(self.payer.submit_url, content=record.request_body, headers=HEADERS,
                                          auth=self.auth)
            except httpx.TransportError as exc:
                core.on_transport_error(record, started, exc)
                failure, last = exc, None
            else:
                decision = core.on_response(record, started, response)
                if decision is not None:
                    return decision
                last = response
            if attempt < policy.attempts:
                time.sleep(policy.delay(attempt, last))
        raise core.give_up(record, last, failure)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncPasClient:
    """Asynchronous PAS client for one payer; the same behaviour as :class:`PasClient`."""

    def __init__(self, payer: PayerConfig, *, ledger: Ledger | None = None,
                 http: httpx.AsyncClient | None = None, auth: httpx.Auth | None = None, check: bool = True) -> None:
        self.payer = payer
        self.ledger = ledger or Ledger()
        self._core = _Core(payer, self.ledger)
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(timeout=payer.timeout)
        self.auth = auth or make_auth(payer)
        self.check = check

    async def submit(self, order: PriorAuthOrder) -> SubmitResult:
        record = self._core.prepare(order, check=self.check)
        stored = self._core.stored_decision(record)
        if stored is not None:
            return SubmitResult(record.id, record.order_id, stored, sent=False)
        return SubmitResult(record.id, record.order_id, await self._send(record), sent=True)

    async def _send(self, record: LedgerRecord) -> PasDecision:
        core, policy = self._core, self.payer.retry
        last: httpx.Response | None = None
        failure: Exception | None = None
        self.ledger.set_state(record.id, "sending")
        for attempt in range(1, policy.attempts + 1):
            started = now_utc()
            try:
                response = await self.http.post(self.payer.submit_url, content=record.request_body,
                                                headers=HEADERS, auth=self.auth)
            except httpx.TransportError as exc:
                core.on_transport_error(record, started, exc)
                failure, last = exc, None
            else:
                decision = core.on_response(record, started, response)
                if decision is not None:
                    return decision
                last = response
            if attempt < policy.attempts:
                await asyncio.sleep(policy.delay(attempt, last))
        raise core.give_up(record, last, failure)

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

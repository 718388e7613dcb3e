"""The submission protocol without I/O: prepare a request once, classify each answer, record everything.

The sync and async clients in :mod:`fhir_pa.pas.submit` share it, so they cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import httpx

from fhir_pa.auth.keys import load_signing_key
from fhir_pa.auth.smart import SmartBackendAuth
from fhir_pa.config import PayerConfig
from fhir_pa.errors import FhirPaError, InputError, LedgerError, PayerRejected, PayerUnavailable, TransportError
from fhir_pa.fhir.outcome import outcome_issues, parse_outcome
from fhir_pa.fhir.retry import RETRYABLE_STATUS, nothing_was_sent
from fhir_pa.ledger.store import RESENDABLE_STATES, Ledger, LedgerRecord
from fhir_pa.pas.bundle import PasRequest, build_request_bundle
from fhir_pa.pas.checks import ensure_valid
from fhir_pa.pas.decision import PasDecision, parse_response
from fhir_pa.pas.order import PriorAuthOrder
from fhir_pa.pas.update import build_cancel_bundle, build_update_bundle

FHIR_JSON = "application/fhir+json"
HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}


def encode(bundle: dict[str, object]) -> bytes:
    """The wire form of a Bundle: compact UTF-8 JSON, exactly what the ledger stores."""
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def make_auth(payer: PayerConfig) -> SmartBackendAuth:
    """SMART Backend Services auth for ``payer``, with the key loaded from its key file."""
    key = load_signing_key(payer.key_path, kid=payer.key_id)
    return SmartBackendAuth(fhir_base_url=payer.base, client_id=payer.client_id, key=key,
                            scopes=list(payer.requested_scopes), token_endpoint=payer.token_endpoint)


class SubmitCore:
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

    def prepare_update(self, order: PriorAuthOrder, *, check: bool) -> LedgerRecord:
        """Record a Claim Update of the order's newest request, bringing it to ``order`` (idempotent per edit)."""
        order_key = f"{order.order_id}#update-{hashlib.sha256(order.model_dump_json().encode()).hexdigest()[:16]}"
        existing = self.ledger.find(payer=self.payer.base, order_id=order_key)
        if existing is not None:  # this very edit was recorded before: resend or return it, never a second update
            return existing
        prior = self._prior(order.order_id, "update")
        request = build_update_bundle(json.loads(prior.request_body), order, sender=self.payer.sender)
        return self._record(request, order_key, prior, "update", check=check)

    def prepare_cancel(self, key: str, *, check: bool) -> LedgerRecord:
        """Record a cancel-all Claim Update of the request ``key`` (record or order id); idempotent."""
        root = self.ledger.get(self.ledger.lookup(key).case_id)
        order_key = f"{root.order_id}#cancel"
        existing = self.ledger.find(payer=self.payer.base, order_id=order_key)
        if existing is not None:
            return existing
        prior = self._prior(key, "cancel")
        request = build_cancel_bundle(json.loads(prior.request_body), sender=self.payer.sender)
        return self._record(request, order_key, prior, "cancel", check=check)

    def _prior(self, key: str, what: str) -> LedgerRecord:
        prior = self.ledger.lookup(key)
        if prior.payer != self.payer.base:
            raise InputError(f"request {prior.id} was sent to {prior.payer}, not to {self.payer.base}")
        if prior.state in RESENDABLE_STATES or prior.state == "rejected":
            raise InputError(f"request {prior.id} is {prior.state!r}: only a request the payer accepted can get "
                             f"an {what}; submit it first")
        if prior.state in ("denied", "cancelled"):
            raise InputError(f"request {prior.id} is {prior.state}: a {prior.state} request cannot be updated; "
                             "submit a new request")
        return prior

    def _record(self, request: PasRequest, order_key: str, prior: LedgerRecord, kind: str, *,
                check: bool) -> LedgerRecord:
        if check:
            ensure_valid(request.bundle)
        return self.ledger.record_intent(
            order_id=order_key, payer=self.payer.base, bundle_identifier=request.bundle_identifier,
            claim_identifier=request.claim_identifier, urgency=prior.urgency, body=encode(request.bundle),
            kind=kind, prior=prior)

    def stored_decision(self, record: LedgerRecord) -> PasDecision | None:
        """The answer already on file for a record that must not be sent again (None: send it).

        A request the payer refused for good raises that refusal again rather than sending it twice.
        """
        if record.state in RESENDABLE_STATES:
            return None
        if record.decision_body is not None:  # the newest answer: $submit's, or a later notification or poll
            return parse_response(record.decision_body, source="stored response")
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
                                  preauth_ref=decision.preauth_ref, claim_response_id=decision.claim_response_id,
                                  decision_body=body, channel="submit")
            return decision
        if status in RETRYABLE_STATUS or status == 401:
            # A 401 means the payer did not process the request: our token expired again between its renewal and
            # this send (a payer rotating tokens under load). Resending with a fresh token is safe; giving up is not.
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



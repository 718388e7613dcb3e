"""Ask a payer once where a pended request stands: ClaimResponse read, ClaimResponse search, or ``$inquire``.

Every answer is stored in the ledger as an exchange before it is interpreted (nothing received is lost), and
a usable decision is applied with :meth:`fhir_pa.ledger.Ledger.advance`, which refuses to regress a request.
A busy payer (429, 5xx, Retry-After) or a dropped connection is not an error here: the poll says when to try
again, and the tracker's backoff takes it from there.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from fhir_pa.config import PayerConfig, PollSettings
from fhir_pa.errors import FhirPaError, PayerRejected
from fhir_pa.fhir.flow import Action, Call, Flow, Wait
from fhir_pa.fhir.outcome import outcome_issues, parse_outcome
from fhir_pa.fhir.ratelimit import RateLimiter, shared_limiter
from fhir_pa.fhir.retry import RETRYABLE_STATUS, nothing_was_sent, retry_after
from fhir_pa.ledger.store import Ledger, LedgerRecord, now_utc
from fhir_pa.pas.decision import PasDecision, parse_response
from fhir_pa.pas.inquiry import build_inquiry_bundle, parse_inquiry_response

FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class PollOutcome:
    """What one poll learned: a decision (None when the payer had nothing usable) and when to ask again."""

    channel: str  # poll-read, poll-search, inquire
    decision: PasDecision | None
    #: What :meth:`Ledger.advance` did with the decision (applied, unchanged, stale), or None.
    verdict: str | None
    #: The payer asked us to wait this long (Retry-After), or None.
    retry_after: float | None
    detail: str


def channel_for(payer: PayerConfig, record: LedgerRecord) -> str:
    mode = payer.poll.mode
    if mode == "auto":
        return "poll-read" if record.claim_response_id else "inquire"
    return {"read": "poll-read", "search": "poll-search", "inquire": "inquire"}[mode]


def next_poll_delay(settings: PollSettings, polls: int, retry_after_s: float | None = None,
                    rng: random.Random | None = None) -> float:
    """Seconds until the next poll after ``polls`` polls: exponential, capped, with ±20 % jitter.

    A payer's ``Retry-After`` is a floor, never shortened by jitter.
    """
    base = min(settings.max_delay, settings.first_delay * settings.multiplier ** max(0, polls))
    delay = base * (rng or random).uniform(0.8, 1.2)
    delay = min(delay, settings.max_delay)
    return max(delay, retry_after_s or 0.0)


def first_poll_at(settings: PollSettings, record: LedgerRecord) -> datetime:
    start = record.submitted_at or record.created_at
    return start + timedelta(seconds=settings.first_delay)


def _request(payer: PayerConfig, record: LedgerRecord, channel: str) -> tuple[httpx.Request, bytes]:
    headers = {"Accept": FHIR_JSON}
    if channel == "poll-read":
        return httpx.Request("GET", f"{payer.base}/ClaimResponse/{quote(record.claim_response_id or '')}",
                             headers=headers), b""
    if channel == "poll-search":
        url = f"{payer.base}/ClaimResponse?request.identifier={quote(record.claim_identifier, safe='')}"
        return httpx.Request("GET", url, headers=headers), b""
    original = json.loads(record.request_body)
    last = parse_response(record.decision_body) if record.decision_body else None
    admin_refs = {item.sequence: item.administration_reference for item in (last.items if last else ())
                  if item.sequence is not None and item.administration_reference}
    inquiry = build_inquiry_bundle(original, sender=payer.sender, preauth_ref=record.preauth_ref,
                                   administration_refs=admin_refs or None)
    body = json.dumps(inquiry.bundle, separators=(",", ":")).encode("utf-8")
    return httpx.Request("POST", payer.inquire_url, content=body,
                         headers={**headers, "Content-Type": FHIR_JSON}), body


def _search_hit(body: bytes) -> bytes | None:
    """The first ClaimResponse of a searchset, re-encoded, or None when the search found nothing."""
    data: Any = json.loads(body)
    if isinstance(data, Mapping) and data.get("resourceType") == "Bundle":
        for entry in data.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, Mapping) else None
            if isinstance(resource, Mapping) and resource.get("resourceType") == "ClaimResponse":
                return json.dumps(resource, separators=(",", ":")).encode("utf-8")
        return None
    return body


def _interpret(channel: str, response: httpx.Response) -> tuple[PasDecision | None, bytes | None, str]:
    status, body = response.status_code, response.content
    source = f"{channel} answer"
    if channel == "inquire":
        result = parse_inquiry_response(status, body)
        if result.not_found or not result.decisions:
            return None, None, "the payer found nothing for this inquiry"
        stored = json.dumps(result.bundles[0], separators=(",", ":")).encode("utf-8")
        return result.decisions[0], stored, f"inquiry answered ({result.shape})"
    if status == 404:
        return None, None, "the payer does not know this ClaimResponse (yet)"
    if channel == "poll-search":
        hit = _search_hit(body)
        if hit is None:
            return None, None, "the search found no ClaimResponse"
        return parse_response(hit, source=source), hit, "search answered"
    return parse_response(body, source=source), body, "read answered"


def poll_once(payer: PayerConfig, ledger: Ledger, record: LedgerRecord, *,
              limiter: RateLimiter = shared_limiter, channel: str | None = None) -> Flow[PollOutcome]:
    """One poll of ``record`` through ``channel`` (default: what the payer settings choose); applies what it
    learns."""
    channel = channel or channel_for(payer, record)
    request, body = _request(payer, record, channel)
    wait = limiter.reserve(payer.base, payer.poll.rate_limit)
    if wait > 0:
        yield Wait(wait)
    started = now_utc()
    try:
        response = yield Call(request)
    except httpx.TransportError as exc:
        ledger.record_exchange(record.id, kind=channel, url=str(request.url), body=body, started_at=started,
                               delivery="not-sent" if nothing_was_sent(exc) else "unknown",
                               error=type(exc).__name__)
        return PollOutcome(channel, None, None, None, f"no answer ({type(exc).__name__})")
    assert response is not None
    ledger.record_exchange(record.id, kind=channel, url=str(request.url), body=body, started_at=started,
                           delivery="sent", status_code=response.status_code,
                           content_type=response.headers.get("content-type"), response_body=response.content)
    status = response.status_code
    if status in RETRYABLE_STATUS:
        return PollOutcome(channel, None, None, retry_after(response), f"payer busy (HTTP {status})")
    if 400 <= status < 500 and status != 404:
        outcome = parse_outcome(response.content)
        raise PayerRejected(status, outcome, outcome_issues(outcome) if outcome else ())
    try:
        decision, decision_body, detail = _interpret(channel, response)
    except FhirPaError as exc:
        return PollOutcome(channel, None, None, None, f"unusable answer: {exc.one_line()}")
    if decision is None or decision_body is None:
        return PollOutcome(channel, None, None, None, detail)
    verdict = ledger.advance(record.id, decision.status.value, channel=channel, body=decision_body,
                             detail=detail, preauth_ref=decision.preauth_ref,
                             claim_response_id=decision.claim_response_id if channel != "inquire" else None)
    return PollOutcome(channel, decision, verdict, None, detail)


__all__ = ["Action", "PollOutcome", "channel_for", "first_poll_at", "next_poll_delay", "poll_once"]

"""Keep one PAS Subscription alive at a payer for our sending system (notes/pas.md §2.6).

Creating, checking and re-requesting are flows (:mod:`fhir_pa.fhir.flow`), so the sync and async trackers
share them. The header token the payer must echo on notifications is random per request of the Subscription;
the ledger keeps only its hash, and it is saved *before* the Subscription is sent, because the payer's
handshake can arrive before its ``201`` does.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from fhir_pa.config import PayerConfig
from fhir_pa.errors import ConfigurationError, InvalidResponse, PayerRejected
from fhir_pa.fhir.flow import Flow, Wait, exchange
from fhir_pa.fhir.outcome import outcome_issues, parse_outcome
from fhir_pa.ledger.store import Ledger, now_utc
from fhir_pa.ledger.subscriptions import SubscriptionRecord
from fhir_pa.pas.subscription import (
    BROKEN_STATES,
    SubscriptionSettings,
    build_subscription,
    sending_system_id,
    subscription_state,
)

FHIR_JSON = "application/fhir+json"
_HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
#: Seconds between looks at the ledger for the handshake our receiver records.
HANDSHAKE_STEP = 0.05


@dataclass(frozen=True)
class SubscriptionCheck:
    record: SubscriptionRecord
    #: True when the Subscription had to be created or re-requested (events may have been missed meanwhile).
    renewed: bool


def _settings(payer: PayerConfig) -> SubscriptionSettings:
    if payer.subscription is None:
        raise ConfigurationError(f"payer {payer.base} is not configured for notifications (no subscription)")
    return payer.subscription


def _resource(response: httpx.Response, what: str) -> Mapping[str, Any] | None:
    try:
        data = json.loads(response.content) if response.content else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidResponse(f"{what}: the payer answered HTTP {response.status_code} with a body that is not JSON",
                              path="$") from None
    return data if isinstance(data, Mapping) and data.get("resourceType") == "Subscription" else None


def _refused(response: httpx.Response) -> PayerRejected:
    outcome = parse_outcome(response.content)
    return PayerRejected(response.status_code, outcome, outcome_issues(outcome) if outcome else ())


def _remote_id(response: httpx.Response, resource: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    if resource is not None and isinstance(resource.get("id"), str):
        return resource["id"], None
    location = response.headers.get("location") or response.headers.get("content-location")
    if location:
        parts = location.rstrip("/").split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        return parts[-1], location
    return None, None


def create_subscription(payer: PayerConfig, ledger: Ledger) -> Flow[SubscriptionRecord]:
    """POST a new Subscription (a fresh token) and record it."""
    settings = _settings(payer)
    system_id = sending_system_id(payer.sender)
    token = secrets.token_urlsafe(32)
    ledger.subscriptions.save(payer=payer.base, sending_system_id=system_id, endpoint=settings.endpoint,
                              status="requesting", token=token, remote_id=None, remote_url=None, error=None,
                              at=now_utc())
    body = build_subscription(settings, sending_system_id=system_id, header_token=token)
    sent_at = now_utc()
    response = yield from exchange(httpx.Request("POST", f"{payer.base}/Subscription", headers=_HEADERS,
                                             content=json.dumps(body).encode("utf-8")))
    if response.status_code >= 300:
        ledger.subscriptions.save(payer=payer.base, sending_system_id=system_id, endpoint=settings.endpoint,
                                  status="refused", token=None, remote_id=None, remote_url=None,
                                  error=f"HTTP {response.status_code}", at=now_utc())
        raise _refused(response)
    resource = _resource(response, "Subscription create")
    remote_id, remote_url = _remote_id(response, resource)
    if remote_id is None:
        raise InvalidResponse("the payer created our Subscription but gave neither its id nor a Location", path="id")
    state = subscription_state(resource) if resource is not None else None
    record = ledger.subscriptions.save(
        payer=payer.base, sending_system_id=system_id, endpoint=settings.endpoint,
        status=state.status if state and state.status else "requested", token=None, remote_id=remote_id,
        remote_url=remote_url, error=state.error if state else None, at=now_utc())
    return (yield from await_handshake(payer, ledger, record, sent_at))


def rerequest_subscription(payer: PayerConfig, ledger: Ledger, record: SubscriptionRecord) -> Flow[SubscriptionRecord]:
    """PUT the Subscription back to ``requested`` with a fresh token (the subscriber's recovery duty)."""
    settings = _settings(payer)
    token = secrets.token_urlsafe(32)
    ledger.subscriptions.save(payer=payer.base, sending_system_id=record.sending_system_id,
                              endpoint=settings.endpoint, status="requesting", token=token,
                              remote_id=record.remote_id, remote_url=record.remote_url, error=None, at=now_utc())
    body = {**build_subscription(settings, sending_system_id=record.sending_system_id, header_token=token),
            "id": record.remote_id}
    sent_at = now_utc()
    response = yield from exchange(httpx.Request("PUT", f"{payer.base}/Subscription/{record.remote_id}",
                                             headers=_HEADERS, content=json.dumps(body).encode("utf-8")))
    if response.status_code == 404:
        return (yield from create_subscription(payer, ledger))
    if response.status_code >= 300:
        raise _refused(response)
    resource = _resource(response, "Subscription update")
    state = subscription_state(resource) if resource is not None else None
    saved = ledger.subscriptions.save(
        payer=payer.base, sending_system_id=record.sending_system_id, endpoint=settings.endpoint,
        status=state.status if state and state.status else "requested", token=None, remote_id=record.remote_id,
        remote_url=record.remote_url, error=state.error if state else None, at=now_utc())
    return (yield from await_handshake(payer, ledger, saved, sent_at))


def read_status(payer: PayerConfig, ledger: Ledger, record: SubscriptionRecord) -> Flow[SubscriptionRecord | None]:
    """GET our Subscription and record the status the payer gives it; None when the payer no longer has it."""
    response = yield from exchange(httpx.Request("GET", f"{payer.base}/Subscription/{record.remote_id}",
                                             headers={"Accept": FHIR_JSON}))
    if response.status_code in (404, 410):
        return None
    if response.status_code >= 300:
        raise _refused(response)
    resource = _resource(response, "Subscription read")
    if resource is None:
        raise InvalidResponse("the payer's Subscription read did not return a Subscription", path="resourceType")
    state = subscription_state(resource)
    ledger.subscriptions.set_status(record.id, state.status or record.status, error=state.error, at=now_utc())
    return ledger.subscriptions.by_id(record.id)


def await_handshake(payer: PayerConfig, ledger: Ledger, record: SubscriptionRecord,
                    sent_at: datetime) -> Flow[SubscriptionRecord]:
    """Wait (up to ``handshake_wait``) until our receiver has recorded the payer's handshake, then read the
    status the payer settled on. A payer that answered ``active`` (or ``error``) at once is taken at its word."""
    wait = _settings(payer).handshake_wait
    if record.status != "requested" or wait <= 0 or record.remote_id is None:
        return record
    waited = 0.0
    while waited < wait:
        current = ledger.subscriptions.by_id(record.id)
        heard = current is not None and current.last_notification_at is not None \
            and current.last_notification_at >= sent_at
        if heard:
            record = (yield from read_status(payer, ledger, record)) or record
            if record.status != "requested":
                return record
        yield Wait(HANDSHAKE_STEP)
        waited += HANDSHAKE_STEP
    return (yield from read_status(payer, ledger, record)) or record


def ensure_subscription(payer: PayerConfig, ledger: Ledger) -> Flow[SubscriptionCheck]:
    """Make sure our Subscription exists and is not ``error``/``off``: create or re-request it if needed."""
    settings = _settings(payer)
    record = ledger.subscriptions.get(payer.base, sending_system_id(payer.sender))
    if record is None or record.remote_id is None or record.endpoint != settings.endpoint:
        if record is not None and record.remote_id is not None:
            return SubscriptionCheck((yield from rerequest_subscription(payer, ledger, record)), True)
        return SubscriptionCheck((yield from create_subscription(payer, ledger)), True)
    current = yield from read_status(payer, ledger, record)
    if current is None:
        return SubscriptionCheck((yield from create_subscription(payer, ledger)), True)
    if current.status in BROKEN_STATES:
        return SubscriptionCheck((yield from rerequest_subscription(payer, ledger, current)), True)
    return SubscriptionCheck(current, False)


__all__ = ["SubscriptionCheck", "await_handshake", "create_subscription", "ensure_subscription", "read_status",
           "rerequest_subscription"]

"""The PAS Subscription we ask a payer for, and how to read the one it holds (notes/pas.md §2.6).

PAS 2.2 wants one R4-backport Subscription per sending system: the PAS topic, rest-hook, ``full-resource``
payloads, and a filter naming our sending system id (ISA06). Payers disagree on the filter's key
(``org-identifier`` in the spec and Inferno, ``orgIdentifier`` in the topic and the IG example) and on its value
(a bare id or ``system|value``), so both are settings. No ``heartbeatPeriod`` is sent: Inferno rejects it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fhir_pa.config import Sender
from fhir_pa.errors import ConfigurationError

TOPIC = "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
FILTER_CRITERIA = f"{BACKPORT}/backport-filter-criteria"
PAYLOAD_CONTENT = f"{BACKPORT}/backport-payload-content"
PROFILES = (f"{BACKPORT}/backport-subscription",
            "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-subscription")

#: Subscription states after which the subscriber must re-request (subscriptions-backport #81/82).
BROKEN_STATES = frozenset({"error", "off"})
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class SubscriptionSettings:
    """How to subscribe at one payer.

    ``endpoint`` is our notification receiver as the payer reaches it. ``filter_key`` and ``value_format`` follow
    what the payer expects: ``org-identifier=ID`` by default, ``system|value`` with ``identifier_system`` when the
    payer matches on a full identifier.
    """

    endpoint: str
    filter_key: str = "org-identifier"
    value_format: Literal["id", "system|value"] = "id"
    identifier_system: str | None = None
    #: ``full-resource`` is required by PAS 2.2 (§spec-62); ``id-only`` only for 2.0.1-era payers.
    content: Literal["full-resource", "id-only"] = "full-resource"
    #: What the payer puts in Content-Type; Inferno honours only these two.
    media_type: Literal["application/fhir+json", "application/json"] = "application/fhir+json"
    reason: str = "PAS prior authorization results for our sending system"
    #: After a create or re-request, wait this long for the payer's handshake and the ``active`` status it
    #: leads to (0 to return at once with ``requested``; tracking checks again later either way).
    handshake_wait: float = 10.0

    def __post_init__(self) -> None:
        if not self.endpoint.startswith(("http://", "https://")):
            raise ConfigurationError(f"the notification endpoint must be an http(s) URL, got {self.endpoint!r}")
        if not _KEY.match(self.filter_key):
            raise ConfigurationError(f"the subscription filter key {self.filter_key!r} is not a search parameter name")
        if self.value_format == "system|value" and not self.identifier_system:
            raise ConfigurationError("value_format 'system|value' needs identifier_system")

    def filter_value(self, sending_system_id: str) -> str:
        if self.value_format == "system|value":
            return f"{self.identifier_system}|{sending_system_id}"
        return sending_system_id


def sending_system_id(sender: Sender) -> str:
    """Our sending system id as the payer matches it: the ISA06 interchange sender id, else the application code.

    The sandbox and the PAS request Bundle read the same two TransmissionIdentifiers, in this order.
    """
    value = sender.interchange_sender_id or sender.application_sender_code
    if not value or not value.strip() or any(ch.isspace() for ch in value):
        raise ConfigurationError("the sender needs an interchange_sender_id (ISA06) without spaces to subscribe")
    return value


def build_subscription(settings: SubscriptionSettings, *, sending_system_id: str, header_token: str) -> dict[str, Any]:
    """The Subscription resource to POST (or PUT back to ``requested``); ``header_token`` is what the payer must
    send us as a bearer token on every notification."""
    if not header_token or any(ch in header_token for ch in "\r\n "):
        raise ConfigurationError("the notification token must be a single non-empty word")
    criteria = f"{settings.filter_key}={settings.filter_value(sending_system_id)}"
    return {
        "resourceType": "Subscription",
        "meta": {"profile": list(PROFILES)},
        "status": "requested",
        "reason": settings.reason,
        "criteria": TOPIC,
        "_criteria": {"extension": [{"url": FILTER_CRITERIA, "valueString": criteria}]},
        "channel": {
            "type": "rest-hook",
            "endpoint": settings.endpoint,
            "payload": settings.media_type,
            "_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": settings.content}]},
            "header": [f"Authorization: Bearer {header_token}"],
        },
    }


@dataclass(frozen=True)
class SubscriptionState:
    """What the payer says of our Subscription."""

    status: str | None
    error: str | None

    @property
    def needs_rerequest(self) -> bool:
        """``error`` or ``off``: the payer stopped notifying; recovery is ours (PUT it back to ``requested``)."""
        return self.status in BROKEN_STATES


def _error_text(resource: Mapping[str, Any]) -> str | None:
    error = resource.get("error")
    if isinstance(error, str) and error.strip():
        return " ".join(error.split())[:500]
    # R4B/R5 shape some payers send: error as a list of CodeableConcepts.
    if isinstance(error, list):
        texts = [c.get("text") or next((d.get("display") or d.get("code") for d in c.get("coding") or []
                                        if isinstance(d, Mapping)), None)
                 for c in error if isinstance(c, Mapping)]
        joined = "; ".join(str(t) for t in texts if t)
        return joined[:500] or None
    return None


def subscription_state(resource: Mapping[str, Any]) -> SubscriptionState:
    """Read status and error leniently from a Subscription the payer returned."""
    status = resource.get("status")
    return SubscriptionState(status if isinstance(status, str) and status else None, _error_text(resource))


__all__ = ["BROKEN_STATES", "TOPIC", "SubscriptionSettings", "SubscriptionState", "build_subscription",
           "sending_system_id", "subscription_state"]

"""PAS Subscriptions (R4 backport, notes/pas.md §2.6): what a client may ask for, and the ones we hold.

A Subscription is accepted when it has the PAS essentials Inferno checks:

- ``criteria`` = the PASSubscriptionTopic canonical;
- exactly one ``backport-filter-criteria`` on ``_criteria``, valued ``org-identifier=<v>`` or
  ``orgIdentifier=<v>`` (key case-insensitive; ``<v>`` a bare id or ``system|value``; several values may be
  separated by commas);
- ``channel.type`` rest-hook with an http(s) ``endpoint``;
- ``backport-payload-content`` on ``channel._payload``: ``full-resource`` or ``id-only``;
- no ``heartbeatPeriod`` (Inferno rejects it; the sandbox sends no heartbeats);
- every ``channel.header`` line is ``Name: value``.

Otherwise the answer is 400 with one OperationOutcome issue per problem, each with its FHIRPath. An accepted
Subscription is held with status ``requested`` until its handshake decides ``active`` or ``error``.
A filter value matches a request when it equals the request's sending system id (the value part of
``system|value``).
"""

from __future__ import annotations

import copy
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fhir_pa_sandbox.outcome import OutcomeIssue

TOPIC = "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
FILTER_CRITERIA = f"{BACKPORT}/backport-filter-criteria"
PAYLOAD_CONTENT = f"{BACKPORT}/backport-payload-content"
PAYLOAD_KINDS = ("full-resource", "id-only")
MEDIA_TYPES = ("application/fhir+json", "application/json")
_FILTER = re.compile(r"^\s*(org-identifier|orgidentifier)\s*=\s*(\S+)\s*$", re.IGNORECASE)
_HEADER = re.compile(r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*:\s*(.*)$")


@dataclass(frozen=True)
class SubscriptionRequest:
    """What an accepted Subscription asks for."""

    endpoint: str
    #: Filter values as sent (bare id or ``system|value``).
    filters: tuple[str, ...]
    content: str
    media_type: str
    headers: tuple[tuple[str, str], ...]

    def matches(self, sender: str | None) -> bool:
        """True when a request from sending system ``sender`` is this Subscription's business."""
        return sender is not None and any(value.rpartition("|")[2] == sender for value in self.filters)


def _extensions(holder: Any, url: str) -> list[Mapping[str, Any]]:
    extensions = holder.get("extension") if isinstance(holder, Mapping) else None
    return [ext for ext in extensions or [] if isinstance(ext, Mapping) and ext.get("url") == url]


def _filters(resource: Mapping[str, Any], issues: list[OutcomeIssue]) -> tuple[str, ...]:
    where = "Subscription.criteria.extension"
    criteria = _extensions(resource.get("_criteria"), FILTER_CRITERIA)
    if len(criteria) != 1:
        issues.append(OutcomeIssue("required" if not criteria else "invalid",
                                   f"give exactly one backport-filter-criteria (found {len(criteria)})", where))
        return ()
    match = _FILTER.match(str(criteria[0].get("valueString", "")))
    if not match:
        issues.append(OutcomeIssue("invalid", "the filter criteria must be org-identifier=<sending system id>",
                                   f"{where}.valueString"))
        return ()
    values = tuple(value for value in match.group(2).split(",") if value.rpartition("|")[2])
    if not values:
        issues.append(OutcomeIssue("invalid", "the org-identifier filter has no value", f"{where}.valueString"))
    return values


def _endpoint(channel: Mapping[str, Any], issues: list[OutcomeIssue]) -> str:
    if channel.get("type") != "rest-hook":
        issues.append(OutcomeIssue("not-supported", "channel.type must be rest-hook", "Subscription.channel.type"))
    endpoint = channel.get("endpoint")
    parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        issues.append(OutcomeIssue("invalid", "channel.endpoint must be an http(s) URL",
                                   "Subscription.channel.endpoint"))
        return ""
    return str(endpoint)


def _payload(channel: Mapping[str, Any], issues: list[OutcomeIssue]) -> tuple[str, str]:
    media = channel.get("payload", "application/fhir+json")
    if media not in MEDIA_TYPES:
        issues.append(OutcomeIssue("not-supported", f"channel.payload must be {' or '.join(MEDIA_TYPES)}",
                                   "Subscription.channel.payload"))
    content = _extensions(channel.get("_payload"), PAYLOAD_CONTENT)
    kind = content[0].get("valueCode") if len(content) == 1 else None
    if kind not in PAYLOAD_KINDS:
        issues.append(OutcomeIssue("invalid", f"give one backport-payload-content: {' or '.join(PAYLOAD_KINDS)}",
                                   "Subscription.channel.payload.extension"))
    return str(media), str(kind)


def _headers(channel: Mapping[str, Any], issues: list[OutcomeIssue]) -> tuple[tuple[str, str], ...]:
    lines = channel.get("header", [])
    if not isinstance(lines, list):
        issues.append(OutcomeIssue("structure", "channel.header must be a list of strings",
                                   "Subscription.channel.header"))
        return ()
    headers: list[tuple[str, str]] = []
    for position, line in enumerate(lines):
        match = _HEADER.match(line) if isinstance(line, str) else None
        if not match or "\n" in line or "\r" in line:
            issues.append(OutcomeIssue("invalid", "each channel.header must be 'Name: value'",
                                       f"Subscription.channel.header[{position}]"))
            continue
        headers.append((match.group(1), match.group(2).strip()))
    return tuple(headers)


def read_subscription(resource: Any) -> SubscriptionRequest | list[OutcomeIssue]:
    """The accepted request, or the problems (each with a FHIRPath) that make it unacceptable."""
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Subscription":
        return [OutcomeIssue("structure", "the body must be a Subscription resource", "Subscription")]
    issues: list[OutcomeIssue] = []
    if resource.get("criteria") != TOPIC:
        issues.append(OutcomeIssue("invalid", f"criteria must be the PAS topic {TOPIC}", "Subscription.criteria"))
    filters = _filters(resource, issues)
    channel = resource.get("channel")
    if not isinstance(channel, Mapping):
        issues.append(OutcomeIssue("required", "channel is required", "Subscription.channel"))
        return issues
    if "heartbeatPeriod" in channel or _extensions(channel, f"{BACKPORT}/backport-heartbeat-period"):
        issues.append(OutcomeIssue("not-supported", "this payer sends no heartbeats: leave out heartbeatPeriod",
                                   "Subscription.channel.extension"))
    endpoint = _endpoint(channel, issues)
    media, content = _payload(channel, issues)
    headers = _headers(channel, issues)
    if issues:
        return issues
    return SubscriptionRequest(endpoint, filters, content, media, headers)


@dataclass
class HeldSubscription:
    """A Subscription the sandbox holds: the resource as sent, and what the payer made of it."""

    id: str
    client_id: str
    resource: Mapping[str, Any]
    request: SubscriptionRequest
    status: str = "requested"
    error: str | None = None
    version: int = 1
    #: Event notifications numbered so far (event numbers start at 1 per Subscription).
    events: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_resource(self) -> dict[str, Any]:
        """The Subscription as the payer shows it: the client's resource with our id, status and error."""
        with self._lock:
            resource = copy.deepcopy(dict(self.resource))
            resource.update({"id": self.id, "status": self.status})
            resource["meta"] = {**(resource.get("meta") or {}), "versionId": str(self.version)}
            resource.pop("error", None)
            if self.error:
                resource["error"] = self.error
            return resource

    def next_event(self) -> int:
        with self._lock:
            self.events += 1
            return self.events

    def set_status(self, status: str, error: str | None = None) -> None:
        with self._lock:
            self.status, self.error = status, error


class SubscriptionStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, HeldSubscription] = {}

    def create(self, client_id: str, resource: Mapping[str, Any], request: SubscriptionRequest) -> HeldSubscription:
        held = HeldSubscription(str(uuid.uuid4()), client_id, resource, request)
        with self._lock:
            self._held[held.id] = held
        return held

    def replace(self, held: HeldSubscription, resource: Mapping[str, Any], request: SubscriptionRequest) -> None:
        """A re-request (PUT): new content, status back to ``requested``, next version."""
        with held._lock:
            held.resource, held.request = resource, request
            held.status, held.error = "requested", None
            held.version += 1

    def get(self, subscription_id: str, client_id: str | None = None) -> HeldSubscription | None:
        with self._lock:
            held = self._held.get(subscription_id)
        return held if held is not None and (client_id is None or held.client_id == client_id) else None

    def delete(self, subscription_id: str) -> None:
        with self._lock:
            self._held.pop(subscription_id, None)

    def of_client(self, client_id: str) -> list[HeldSubscription]:
        with self._lock:
            return [held for held in self._held.values() if held.client_id == client_id]

    def for_sender(self, sender: str | None) -> list[HeldSubscription]:
        """Active Subscriptions a request from ``sender`` must be notified to."""
        with self._lock:
            held = list(self._held.values())
        return [s for s in held if s.status == "active" and s.request.matches(sender)]

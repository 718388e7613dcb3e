"""Build R4-backport notification Bundles (notes/pas.md §2.7): handshakes and PAS event notifications.

Every notification is a ``history`` Bundle whose entry[0] is a SubscriptionStatus ``Parameters``
(``subscription``, ``topic``, ``status``, ``type``, ``events-since-subscription-start`` and, for events, one
``notification-event`` with ``event-number``, ``timestamp`` and ``focus``). Payers disagree on where the PAS
response goes, so an event can be built in each shape clients meet (knob ``notification_shape``):

- ``pas-2.2`` (default; IG 2.2.1 and Inferno): focus → the response Bundle, nested as entry[1] with fullUrl
  ``urn:uuid:<bundle id>``; the ClaimResponse is inside it;
- ``flat-2.0.1``: focus → the ClaimResponse fullUrl; ClaimResponse, Patient and Organizations as flat entries,
  the others named by ``additional-context``;
- ``ri`` (reference implementation): focus → the ClaimResponse fullUrl; the response Bundle nested *without*
  a fullUrl;
- ``id-only``: focus only, no resources (also what an ``id-only`` Subscription always gets).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fhir_pa_sandbox.subscriptions import TOPIC

Json = dict[str, Any]

SHAPES = ("pas-2.2", "flat-2.0.1", "ri", "id-only")
STATUS_PROFILE = ("http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
                  "backport-subscription-status-r4")
NOTIFICATION_PROFILE = ("http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
                        "backport-subscription-notification-r4")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _status(subscription_url: str, status: str, kind: str, events: int,
            event: list[Json] | None) -> Json:
    parameters: list[Json] = [
        {"name": "subscription", "valueReference": {"reference": subscription_url}},
        {"name": "topic", "valueCanonical": TOPIC},
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(events)},
    ]
    if event is not None:
        parameters.append({"name": "notification-event", "part": event})
    return {"resourceType": "Parameters", "id": str(uuid.uuid4()), "meta": {"profile": [STATUS_PROFILE]},
            "parameter": parameters}


def _bundle(status: Json, subscription_url: str, more: list[Json], moment: datetime) -> Json:
    first = {"fullUrl": f"urn:uuid:{status['id']}", "resource": status,
             "request": {"method": "GET", "url": f"{subscription_url}/$status"}, "response": {"status": "200"}}
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"profile": [NOTIFICATION_PROFILE]},
            "type": "history", "timestamp": _stamp(moment), "entry": [first, *more]}


def handshake(subscription_url: str, *, status: str = "requested", now: datetime | None = None) -> Json:
    """The handshake a new (or re-requested) Subscription gets before it becomes active."""
    moment = now or datetime.now(UTC)
    return _bundle(_status(subscription_url, status, "handshake", 0, None), subscription_url, [], moment)


def _claim_response_entry(response: Mapping[str, Any]) -> Mapping[str, Any]:
    entries = response.get("entry")
    first = entries[0] if isinstance(entries, list) and entries else {}
    return first if isinstance(first, Mapping) else {}


def _reference(url: str) -> Json:
    return {"valueReference": {"reference": url}}


def event_notification(subscription_url: str, response: Mapping[str, Any], *, event_number: int,
                       shape: str = "pas-2.2", status: str = "active", now: datetime | None = None) -> Json:
    """An event notification carrying the PAS response Bundle ``response`` in ``shape`` (see the module doc)."""
    if shape not in SHAPES:
        raise ValueError(f"notification shape must be one of {', '.join(SHAPES)}")
    moment = now or datetime.now(UTC)
    claim_entry = _claim_response_entry(response)
    claim_url = str(claim_entry.get("fullUrl", ""))
    bundle_url = f"urn:uuid:{response.get('id') or uuid.uuid4()}"
    created = {"request": {"method": "POST", "url": "Bundle"}, "response": {"status": "201"}}
    event: list[Json] = [{"name": "event-number", "valueString": str(event_number)},
                         {"name": "timestamp", "valueInstant": _stamp(moment)}]
    more: list[Json] = []
    if shape == "pas-2.2":
        event.append({"name": "focus", **_reference(bundle_url)})
        more.append({"fullUrl": bundle_url, "resource": copy.deepcopy(dict(response)), **created})
    elif shape == "ri":
        event.append({"name": "focus", **_reference(claim_url)})
        more.append({"resource": copy.deepcopy(dict(response)), **created})
    else:
        event.append({"name": "focus", **_reference(claim_url)})
    if shape == "flat-2.0.1":
        entries = response.get("entry")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, Mapping) or "resource" not in entry:
                continue
            more.append({"fullUrl": entry.get("fullUrl"), "resource": copy.deepcopy(entry["resource"]),
                         "request": {"method": "PUT", "url": str(entry.get("fullUrl", ""))},
                         "response": {"status": "200"}})
            if entry is not claim_entry and isinstance(entry.get("fullUrl"), str):
                event.append({"name": "additional-context", **_reference(entry["fullUrl"])})
    status_resource = _status(subscription_url, status, "event-notification", event_number, event)
    return _bundle(status_resource, subscription_url, more, moment)

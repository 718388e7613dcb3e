"""Read an R4-backport subscription notification: its type, status and each event's PAS decision.

Three event shapes exist (notes/pas.md §2.7) and all are read:

1. PAS 2.2 and Inferno 2.2.1: ``focus`` names a nested PAS response Bundle holding the ClaimResponse;
2. Inferno 2.0.1 / older full-resource: ``focus`` names a ClaimResponse entry, with the Patient and
   Organizations as flat entries named by ``additional-context``;
3. the reference implementation: ``focus`` is the ClaimResponse's URL, and the response Bundle is a nested entry
   without a fullUrl.

An event with no resources at all (``id-only``) has no decision: the caller asks the payer for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fhir_pa.errors import FhirPaError, InvalidResponse
from fhir_pa.pas.decision import PasDecision, parse_response
from fhir_pa.pas.references import BundleIndex

Json = dict[str, Any]


class NotificationType(StrEnum):
    HANDSHAKE = "handshake"
    HEARTBEAT = "heartbeat"
    EVENT = "event-notification"
    QUERY_STATUS = "query-status"
    QUERY_EVENT = "query-event"


@dataclass(frozen=True)
class NotificationEvent:
    """One ``notification-event``: its number, focus, and the decision it carries (None for id-only)."""

    event_number: int | None
    timestamp: str | None
    focus: str | None
    additional_context: tuple[str, ...]
    #: The PAS response Bundle the event carries (nested, or rebuilt from flat entries), or None.
    response: Json | None
    decision: PasDecision | None
    #: Why there is no decision when resources were present but unreadable, else None.
    problem: str | None = None


@dataclass(frozen=True)
class Notification:
    type: NotificationType
    subscription: str | None
    topic: str | None
    status: str | None
    events_since_start: int | None
    events: tuple[NotificationEvent, ...]


def _maps(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _reference(part: Mapping[str, Any]) -> str | None:
    ref = part.get("valueReference")
    value = ref.get("reference") if isinstance(ref, Mapping) else None
    return value if isinstance(value, str) and value else None


def _integer(value: Any, where: str) -> int | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text.lstrip("-").isdigit():
        raise InvalidResponse(f"the notification's {where} is {text[:40]!r}, not a whole number",
                              path=f"Bundle.entry[0].resource.parameter.where(name='{where}')")
    return int(text)


def _load(body: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidResponse("the notification is not JSON", path="$") from None
    except RecursionError:
        raise InvalidResponse("the notification is JSON nested too deeply to read", path="$") from None
    if not isinstance(data, Mapping):
        raise InvalidResponse("the notification is not a JSON object", path="$")
    return data


def _status_resource(bundle: Mapping[str, Any]) -> Mapping[str, Any]:
    if bundle.get("resourceType") != "Bundle":
        raise InvalidResponse(f"a notification is a Bundle, not {bundle.get('resourceType')!r}",
                              path="resourceType")
    entries = bundle.get("entry")
    first = entries[0] if isinstance(entries, list) and entries and isinstance(entries[0], Mapping) else {}
    status = first.get("resource")
    if not isinstance(status, Mapping) or status.get("resourceType") != "Parameters":
        raise InvalidResponse("a notification's first entry must be the SubscriptionStatus Parameters",
                              path="Bundle.entry[0].resource")
    return status


class _EventReader:
    """Finds each event's PAS response inside one notification Bundle."""

    def __init__(self, bundle: Mapping[str, Any]) -> None:
        raw = bundle.get("entry")
        self.entries: list[Any] = raw if isinstance(raw, list) else []
        self.index = BundleIndex(self.entries)

    def _resource(self, position: int) -> Mapping[str, Any]:
        return self.index.resource(position)

    def _flat(self, position: int, context: tuple[str, ...]) -> Json:
        """A response Bundle rebuilt from flat entries: the ClaimResponse first, then its context."""
        entry = self.entries[position]
        rebuilt: list[Json] = [{"fullUrl": entry.get("fullUrl"), "resource": self._resource(position)}]
        for reference in context:
            for other in self.index.resolve(reference, None)[:1]:
                rebuilt.append({"fullUrl": self.entries[other].get("fullUrl"), "resource": self._resource(other)})
        return {"resourceType": "Bundle", "type": "collection",
                "entry": [{k: v for k, v in e.items() if v is not None} for e in rebuilt]}

    def _nested_holding(self, focus: str) -> Json | None:
        """The reference implementation's shape: a nested Bundle whose ClaimResponse is the focus."""
        for position in range(1, len(self.entries)):
            inner = self._resource(position)
            if inner.get("resourceType") != "Bundle":
                continue
            for entry in _maps(inner.get("entry")):
                resource = entry.get("resource")
                if not isinstance(resource, Mapping) or resource.get("resourceType") != "ClaimResponse":
                    continue
                resource_id = resource.get("id")
                if entry.get("fullUrl") == focus or (isinstance(resource_id, str)
                                                      and focus.endswith(f"ClaimResponse/{resource_id}")):
                    return dict(inner)
        return None

    def response_for(self, focus: str | None, context: tuple[str, ...]) -> Json | None:
        if focus:
            for position in self.index.resolve(focus, None)[:1]:
                resource = self._resource(position)
                if resource.get("resourceType") == "Bundle":
                    return dict(resource)
                if resource.get("resourceType") == "ClaimResponse":
                    return self._flat(position, context)
            nested = self._nested_holding(focus)
            if nested is not None:
                return nested
        # Last resort: a notification with resources whose focus points nowhere useful.
        for position in range(1, len(self.entries)):
            resource = self._resource(position)
            if resource.get("resourceType") == "Bundle":
                return dict(resource)
            if resource.get("resourceType") == "ClaimResponse":
                return self._flat(position, context)
        return None


def _event(reader: _EventReader, parts: list[Mapping[str, Any]], position: int) -> NotificationEvent:
    number: int | None = None
    timestamp: str | None = None
    focus: str | None = None
    context: list[str] = []
    for part in parts:
        name = part.get("name")
        if name == "event-number":
            number = _integer(part.get("valueString", part.get("valueUnsignedInt", part.get("valueInteger"))),
                              "event-number")
        elif name == "timestamp" and isinstance(part.get("valueInstant"), str):
            timestamp = part["valueInstant"]
        elif name == "focus":
            focus = _reference(part)
        elif name == "additional-context" and (ref := _reference(part)):
            context.append(ref)
    response = reader.response_for(focus, tuple(context))
    decision: PasDecision | None = None
    problem: str | None = None
    if response is not None:
        try:
            label = number if number is not None else position
            decision = parse_response(response, source=f"notification event {label}")
        except FhirPaError as exc:
            problem, response = exc.one_line(), None
    return NotificationEvent(number, timestamp, focus, tuple(context), response, decision, problem)


def parse_notification(body: bytes | str | Mapping[str, Any]) -> Notification:
    """The notification in ``body``; :class:`InvalidResponse` (with a FHIRPath) when it is not one."""
    bundle = _load(body)
    status = _status_resource(bundle)
    values: dict[str, Any] = {}
    event_parts: list[list[Mapping[str, Any]]] = []
    for parameter in _maps(status.get("parameter")):
        name = parameter.get("name")
        if name == "notification-event":
            event_parts.append(_maps(parameter.get("part")))
        elif isinstance(name, str):
            values[name] = parameter
    kind_text = values.get("type", {}).get("valueCode")
    try:
        kind = NotificationType(kind_text)
    except ValueError:
        raise InvalidResponse(f"unknown notification type {kind_text!r}",
                              path="Bundle.entry[0].resource.parameter.where(name='type')") from None
    reader = _EventReader(bundle)
    events = tuple(_event(reader, parts, n) for n, parts in enumerate(event_parts)) \
        if kind in (NotificationType.EVENT, NotificationType.QUERY_EVENT) else ()
    since = values.get("events-since-subscription-start", {})
    return Notification(
        type=kind,
        subscription=_reference(values.get("subscription", {})),
        topic=values.get("topic", {}).get("valueCanonical") or values.get("topic", {}).get("valueUri"),
        status=values.get("status", {}).get("valueCode"),
        events_since_start=_integer(since.get("valueString", since.get("valueInteger64", since.get("valueInteger"))),
                                    "events-since-subscription-start"),
        events=events,
    )


__all__ = ["Notification", "NotificationEvent", "NotificationType", "parse_notification"]

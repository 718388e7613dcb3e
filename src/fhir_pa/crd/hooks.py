"""The CRD 2.2.1 hooks and their contexts (CDS Hooks library 1.0), built strictly before anything is sent.

Every resource passed in a context has an ``id`` that later actions can point at (found-36); ids are plain
(``patientId`` has no ``/``), references are ``Type/id``; order Bundles are ``collection`` Bundles whose every
entry has a fullUrl (CRD profile-bundle-request). Problems raise :class:`InputError` naming the JSON path.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fhir_pa.errors import InputError

Json = dict[str, Any]

ORDER_SIGN = "order-sign"
ORDER_SELECT = "order-select"
ORDER_DISPATCH = "order-dispatch"
APPOINTMENT_BOOK = "appointment-book"
ENCOUNTER_START = "encounter-start"
ENCOUNTER_DISCHARGE = "encounter-discharge"
HOOKS = (ORDER_SIGN, ORDER_SELECT, ORDER_DISPATCH, APPOINTMENT_BOOK, ENCOUNTER_START, ENCOUNTER_DISCHARGE)
#: Hooks whose service must answer with coverage information (hook-16); the others are supporting.
PRIMARY_HOOKS = frozenset({ORDER_SIGN, ORDER_DISPATCH, APPOINTMENT_BOOK})
ORDER_TYPES = ("CommunicationRequest", "DeviceRequest", "MedicationRequest", "NutritionOrder", "ServiceRequest",
               "VisionPrescription")
USER_TYPES = ("Practitioner", "PractitionerRole")
EXT_REQUESTED_VERSION = "davinci-crd.requestedVersion"
EXT_CONFIGURATION = "davinci-crd.configuration"

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_REFERENCE = re.compile(r"^(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})$")


def _plain_id(value: str | None, where: str, *, required: bool = True) -> str | None:
    if value is None:
        if required:
            raise InputError(f"{where} is required", path=where)
        return None
    if not _ID.match(value):
        raise InputError(f"{where} must be a plain FHIR id (no '/'), e.g. '123'", path=where)
    return value


def _reference(value: str, where: str, allowed: Sequence[str]) -> str:
    match = _REFERENCE.match(value)
    if not match or match.group("type") not in allowed:
        raise InputError(f"{where} must be a reference {' or '.join(t + '/id' for t in allowed)}", path=where)
    return value


def resource_bundle(resources: Sequence[Mapping[str, Any]], *, fhir_server: str, allowed: Sequence[str],
                    where: str) -> Json:
    """A ``collection`` Bundle of ``resources`` (each with an id of an allowed type), fullUrls on our server."""
    if not resources:
        raise InputError(f"{where} needs at least one resource", path=where)
    entries: list[Json] = []
    seen: set[str] = set()
    for n, resource in enumerate(resources):
        at = f"{where}.entry[{n}].resource"
        kind, rid = resource.get("resourceType"), resource.get("id")
        if kind not in allowed:
            raise InputError(f"{at} is a {kind!r}; allowed here: {', '.join(allowed)}", path=f"{at}.resourceType")
        if not isinstance(rid, str) or not _ID.match(rid):
            raise InputError(f"{at} needs an id that later actions can refer to", path=f"{at}.id")
        if f"{kind}/{rid}" in seen:
            raise InputError(f"{at} repeats {kind}/{rid}", path=f"{at}.id")
        seen.add(f"{kind}/{rid}")
        full_url = f"{fhir_server.rstrip('/')}/{kind}/{rid}"
        entries.append({"fullUrl": full_url, "resource": copy.deepcopy(dict(resource))})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def order_sign_context(*, user_id: str, patient_id: str, draft_orders: Sequence[Mapping[str, Any]],
                       fhir_server: str, encounter_id: str | None = None) -> Json:
    context: Json = {"userId": _reference(user_id, "context.userId", USER_TYPES),
                     "patientId": _plain_id(patient_id, "context.patientId")}
    if encounter_id is not None:
        context["encounterId"] = _plain_id(encounter_id, "context.encounterId")
    context["draftOrders"] = resource_bundle(draft_orders, fhir_server=fhir_server, allowed=ORDER_TYPES,
                                             where="context.draftOrders")
    return context


def order_select_context(*, user_id: str, patient_id: str, draft_orders: Sequence[Mapping[str, Any]],
                         selections: Sequence[str], fhir_server: str, encounter_id: str | None = None) -> Json:
    context = order_sign_context(user_id=user_id, patient_id=patient_id, draft_orders=draft_orders,
                                 fhir_server=fhir_server, encounter_id=encounter_id)
    present = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in context["draftOrders"]["entry"]}
    if not selections:
        raise InputError("context.selections needs at least one order", path="context.selections")
    for n, selection in enumerate(selections):
        _reference(selection, f"context.selections[{n}]", ORDER_TYPES)
        if selection not in present:
            raise InputError(f"context.selections[{n}] is not one of the draft orders", path=f"context.selections[{n}]")
    context["selections"] = list(selections)
    return context


def order_dispatch_context(*, patient_id: str, dispatched_orders: Sequence[str], performer: str,
                           fulfillment_tasks: Sequence[Mapping[str, Any]] = ()) -> Json:
    """The CRD 2.2 (CDS Hooks) shape: ``dispatchedOrders``, ``performer``, ``fulfillmentTasks``; no userId."""
    if not dispatched_orders:
        raise InputError("context.dispatchedOrders needs at least one order", path="context.dispatchedOrders")
    context: Json = {
        "patientId": _plain_id(patient_id, "context.patientId"),
        "dispatchedOrders": [_reference(ref, f"context.dispatchedOrders[{n}]", ORDER_TYPES)
                             for n, ref in enumerate(dispatched_orders)],
        "performer": _reference(performer, "context.performer",
                                ("Practitioner", "PractitionerRole", "Organization", "CareTeam", "Patient",
                                 "Device", "RelatedPerson", "HealthcareService")),
    }
    tasks = []
    for n, task in enumerate(fulfillment_tasks):
        if task.get("resourceType") != "Task" or not isinstance(task.get("id"), str):
            raise InputError(f"context.fulfillmentTasks[{n}] must be a Task with an id",
                             path=f"context.fulfillmentTasks[{n}]")
        tasks.append(copy.deepcopy(dict(task)))
    if tasks:
        context["fulfillmentTasks"] = tasks
    return context


def appointment_book_context(*, user_id: str, patient_id: str, appointments: Sequence[Mapping[str, Any]],
                             fhir_server: str, encounter_id: str | None = None) -> Json:
    for n, appointment in enumerate(appointments):
        if appointment.get("status") != "proposed":
            raise InputError("appointments being booked must have status 'proposed'",
                             path=f"context.appointments.entry[{n}].resource.status")
    context: Json = {"userId": _reference(user_id, "context.userId", (*USER_TYPES, "Patient", "RelatedPerson")),
                     "patientId": _plain_id(patient_id, "context.patientId")}
    if encounter_id is not None:
        context["encounterId"] = _plain_id(encounter_id, "context.encounterId")
    context["appointments"] = resource_bundle(appointments, fhir_server=fhir_server, allowed=("Appointment",),
                                              where="context.appointments")
    return context


def encounter_context(*, user_id: str, patient_id: str, encounter_id: str) -> Json:
    """encounter-start and encounter-discharge: user, patient and encounter, all required."""
    return {"userId": _reference(user_id, "context.userId", USER_TYPES),
            "patientId": _plain_id(patient_id, "context.patientId"),
            "encounterId": _plain_id(encounter_id, "context.encounterId")}


def context_orders(hook: str, context: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The request resources a hook call is about (what coverage information will be written to)."""
    if hook in (ORDER_SIGN, ORDER_SELECT):
        entries = context.get("draftOrders", {}).get("entry", [])
        orders = [e["resource"] for e in entries if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)]
        if hook == ORDER_SELECT:
            chosen = set(context.get("selections", []))
            orders = [o for o in orders if f"{o.get('resourceType')}/{o.get('id')}" in chosen]
        return orders
    if hook == APPOINTMENT_BOOK:
        entries = context.get("appointments", {}).get("entry", [])
        return [e["resource"] for e in entries if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)]
    return []


def order_refs(hook: str, context: Mapping[str, Any]) -> tuple[str, ...]:
    """``Type/id`` of every order the payer should answer about (dispatched orders by reference)."""
    if hook == ORDER_DISPATCH:
        return tuple(context.get("dispatchedOrders", []))
    return tuple(f"{o.get('resourceType')}/{o.get('id')}" for o in context_orders(hook, context))


def hook_request(hook: str, context: Mapping[str, Any], *, fhir_server: str | None,
                 fhir_authorization: Mapping[str, Any] | None, prefetch: Mapping[str, Any] | None,
                 requested_version: str | None = None, configuration: Mapping[str, Any] | None = None,
                 hook_instance: str | None = None) -> Json:
    """The JSON body of one hook call; a fresh ``hookInstance`` (UUID v4) unless one is given."""
    if hook not in HOOKS:
        raise InputError(f"unknown hook {hook!r}; CRD defines {', '.join(HOOKS)}", path="hook")
    if fhir_authorization is not None and not fhir_server:
        raise InputError("fhirAuthorization needs fhirServer", path="fhirServer")
    body: Json = {"hook": hook, "hookInstance": hook_instance or str(uuid.uuid4())}
    if fhir_server:
        body["fhirServer"] = fhir_server.rstrip("/")
    if fhir_authorization is not None:
        body["fhirAuthorization"] = dict(fhir_authorization)
    body["context"] = dict(context)
    if prefetch:
        body["prefetch"] = dict(prefetch)
    extension: Json = {}
    if requested_version:
        extension[EXT_REQUESTED_VERSION] = requested_version
    if configuration:
        extension[EXT_CONFIGURATION] = dict(configuration)
    if extension:
        body["extension"] = extension
    return body


__all__ = [
    "APPOINTMENT_BOOK", "ENCOUNTER_DISCHARGE", "ENCOUNTER_START", "HOOKS", "ORDER_DISPATCH", "ORDER_SELECT",
    "ORDER_SIGN", "ORDER_TYPES", "PRIMARY_HOOKS", "appointment_book_context", "context_orders",
    "encounter_context", "hook_request", "order_dispatch_context", "order_refs", "order_select_context",
    "order_sign_context", "resource_bundle",
]

"""Apply a CRD coverage-information update to the order as it is *now*.

A CDS Hooks ``update`` carries the whole resource as the payer saw it, not a diff (cds-hooks/docs #448). The user
may have edited the order since the hook fired, so only the ``ext-coverage-information`` repetitions of the update
land: older ones are replaced (re-invocation must not pile them up; keeping history is the caller's ledger's job),
and every other element of the payer's copy is ignored.

Only coverage-information updates are auto-applied (resp-14/48). ``create`` actions never are: CRD 2.2 forbids
creating Coverage, and the RI echoes prefetch Bundles as creates. Deletes and other updates need a human.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fhir_pa.crd.cards import Action
from fhir_pa.crd.coverage_info import is_coverage_information
from fhir_pa.crd.decision import PLACEHOLDER_ID
from fhir_pa.errors import InputError


def _update_resource(update: Mapping[str, Any] | Action) -> Mapping[str, Any]:
    """The resource of an update: an :class:`Action`, an action object, or the resource itself."""
    if isinstance(update, Action):
        if update.resource is None:
            raise InputError("the update action has no resource", path=f"{update.path}.resource")
        return update.resource
    if "resourceType" not in update and isinstance(update.get("resource"), Mapping):
        if update.get("type") not in (None, "update"):
            raise InputError(f"the action is a {update.get('type')!r}, not an update", path="type")
        resource: Mapping[str, Any] = update["resource"]
        return resource
    return update


def apply_coverage_information(order: Mapping[str, Any], update: Mapping[str, Any] | Action) -> dict[str, Any]:
    """A copy of ``order`` whose coverage-information is exactly the update's; nothing else of the update lands.

    Refuses (InputError) an update for another resource: a different resourceType, or an id other than the
    order's (the IG placeholder ``idfromcontext`` matches any order of the type), or one carrying no
    coverage-information (applying it would only erase what the order has).
    """
    if not isinstance(order, Mapping):
        raise InputError("the order is not a JSON object", path="$")
    resource = _update_resource(update)
    kind, other_kind = order.get("resourceType"), resource.get("resourceType")
    if not isinstance(kind, str):
        raise InputError("the order has no resourceType", path="resourceType")
    if other_kind != kind:
        raise InputError(f"the update is for a {other_kind!r}, not this {kind}", path="resource.resourceType")
    order_id, other_id = order.get("id"), resource.get("id")
    if other_id != order_id and other_id != PLACEHOLDER_ID:
        raise InputError(f"the update is for another {kind} than this order", path="resource.id")
    new = resource.get("extension")
    incoming = [copy.deepcopy(e) for e in new if is_coverage_information(e)] if isinstance(new, list) else []
    if not incoming:
        raise InputError("the update carries no coverage-information", path="resource.extension")
    current = order.get("extension", [])
    if not isinstance(current, list):
        raise InputError("the order's extension is not a list", path=f"{kind}.extension")
    result = copy.deepcopy(dict(order))
    result["extension"] = [copy.deepcopy(e) for e in current if not is_coverage_information(e)] + incoming
    return result


def auto_applicable(action: Action | Mapping[str, Any]) -> bool:
    """Whether ``action`` may be applied without asking the user: an update carrying coverage-information.

    Never a create (CRD 2.2 forbids creating Coverage; the RI echoes prefetch as creates), never a delete, never an
    update of the Coverage itself (resp-68: the client may queue that for review).
    """
    if isinstance(action, Action):
        kind, resource = action.type, action.resource
    else:
        kind = action.get("type")
        raw = action.get("resource")
        resource = raw if isinstance(raw, Mapping) else None
    if kind != "update" or resource is None or resource.get("resourceType") in (None, "Coverage"):
        return False
    extensions = resource.get("extension")
    return isinstance(extensions, list) and any(is_coverage_information(e) for e in extensions)


__all__ = ["apply_coverage_information", "auto_applicable"]

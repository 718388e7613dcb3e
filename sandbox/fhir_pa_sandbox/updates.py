"""Read a PAS Claim Update (notes/pas.md §2.8): which earlier request it changes, and how.

A ``$submit`` whose Claim has ``related`` (relationship ``prior``) is an update. The prior Claim it points at
is inside the Bundle (spec-65), so the case is found by that Claim's identifier, or, failing that, by the
update's own Claim identifier (Inferno reuses the original's). Per item:

- ``modifierExtension`` infoCancelled = true, or an item certificationType ``3`` → cancelled;
- ``extension-infoChanged`` ``added`` / ``changed`` (and not cancelled) → decided again by the rules;
- no marker → keeps its earlier decision.

A Claim-level certificationType ``3`` cancels the whole request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_pa.pas import codes
from fhir_pa.pas.references import BundleIndex

EXT_INFO_CHANGED = codes.extension("infoChanged")
EXT_INFO_CANCELLED = f"{codes.SD}/modifierextension-infoCancelled"
PRIOR = "prior"
CANCEL = "3"


class UpdateProblem(ValueError):
    """An update the sandbox cannot follow; ``expression`` is the FHIRPath of the problem."""

    def __init__(self, message: str, expression: str) -> None:
        super().__init__(message)
        self.expression = expression


@dataclass(frozen=True)
class UpdatePlan:
    #: Claim identifiers (``system|value``) that may name the case: the prior Claim's first, then the update's.
    case_keys: tuple[str, ...]
    cancel_all: bool
    #: Item sequences cancelled in this update (newly or again).
    cancelled: frozenset[int]
    #: Item sequences added or changed (not cancelled): decided again.
    changed: frozenset[int]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def identifier_key(value: Any) -> str | None:
    """An Identifier as ``system|value`` (``|value`` when it has no system)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("value"), str):
        return None
    system = value.get("system")
    return f"{system if isinstance(system, str) else ''}|{value['value']}"


def identifier_keys(resource: Mapping[str, Any]) -> list[str]:
    return [key for key in (identifier_key(v) for v in _list(resource.get("identifier"))) if key]


def _certification(holder: Mapping[str, Any]) -> str | None:
    for ext in _list(holder.get("extension")):
        if isinstance(ext, Mapping) and ext.get("url") == codes.EXT_CERTIFICATION_TYPE:
            concept = ext.get("valueCodeableConcept")
            for coding in _list(concept.get("coding") if isinstance(concept, Mapping) else None):
                if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
                    return str(coding["code"])
    return None


def _flag(holder: Mapping[str, Any], key: str, url: str) -> Any:
    for ext in _list(holder.get(key)):
        if isinstance(ext, Mapping) and ext.get("url") == url:
            for value_key in ("valueBoolean", "valueCode", "valueString"):
                if value_key in ext:
                    return ext[value_key]
    return None


def item_cancelled(item: Mapping[str, Any]) -> bool:
    return _flag(item, "modifierExtension", EXT_INFO_CANCELLED) is True or _certification(item) == CANCEL


def item_changed(item: Mapping[str, Any]) -> bool:
    return _flag(item, "extension", EXT_INFO_CHANGED) in ("added", "changed")


def sequence_of(item: Mapping[str, Any], index: int) -> int:
    sequence = item.get("sequence")
    return sequence if isinstance(sequence, int) and not isinstance(sequence, bool) else index + 1


def _prior_position(claim: Mapping[str, Any], index: BundleIndex, holder_url: str | None) -> int | None:
    for position, related in enumerate(_list(claim.get("related"))):
        if not isinstance(related, Mapping):
            continue
        relationship = related.get("relationship")
        relationship_codes = [c.get("code") for c in _list(relationship.get("coding") if isinstance(
            relationship, Mapping) else None) if isinstance(c, Mapping)]
        if relationship_codes and PRIOR not in relationship_codes:
            continue
        target = related.get("claim")
        reference = target.get("reference") if isinstance(target, Mapping) else None
        if not isinstance(reference, str):
            raise UpdateProblem("Claim.related.claim must reference the prior Claim (included in the Bundle)",
                                f"Bundle.entry[0].resource.related[{position}].claim")
        found = index.resolve(reference, holder_url)
        if len(found) != 1:
            raise UpdateProblem("Claim.related.claim does not resolve to one entry of the Bundle",
                                f"Bundle.entry[0].resource.related[{position}].claim.reference")
        return found[0]
    return None


def read_update(bundle: Mapping[str, Any]) -> UpdatePlan | None:
    """The update ``bundle`` asks for, or None when its Claim has no ``related`` (a new request)."""
    entries: Sequence[Any] = _list(bundle.get("entry"))
    index = BundleIndex(entries)
    claim = index.resource(0) if entries else {}
    if not _list(claim.get("related")):
        return None
    first = entries[0]
    holder_url = first.get("fullUrl") if isinstance(first, Mapping) else None
    prior_at = _prior_position(claim, index, holder_url if isinstance(holder_url, str) else None)
    if prior_at is None:
        raise UpdateProblem("Claim.related has no relationship 'prior' naming the Claim being updated",
                            "Bundle.entry[0].resource.related")
    keys = [*identifier_keys(index.resource(prior_at)), *identifier_keys(claim)]
    if not keys:
        raise UpdateProblem("neither the update nor its prior Claim has an identifier to find the request by",
                            "Bundle.entry[0].resource.identifier")
    cancelled: set[int] = set()
    changed: set[int] = set()
    for position, item in enumerate(_list(claim.get("item"))):
        if not isinstance(item, Mapping):
            continue
        sequence = sequence_of(item, position)
        if item_cancelled(item):
            cancelled.add(sequence)
        elif item_changed(item):
            changed.add(sequence)
    return UpdatePlan(tuple(dict.fromkeys(keys)), _certification(claim) == CANCEL, frozenset(cancelled),
                      frozenset(changed))

"""Compare Claim entries (items, supportingInfo) across versions of a PAS request, as Claim Updates need.

A Claim Update marks each entry against the *immediately prior* Claim (notes/pas.md §2.8): added, changed,
cancelled, or nothing. Deciding that means comparing an entry with its prior version while ignoring the
tracking marks themselves (infoChanged, certificationType, infoCancelled; the Inferno kit ignores the same
three) and the way references are spelled (``Patient/1`` and ``http://ehr/fhir/Patient/1`` are the same
target). The builder and the checks share these helpers so they can never disagree on what "changed" means.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

from fhir_pa.pas import codes

EXT_INFO_CHANGED = codes.extension("infoChanged")
EXT_INFO_CANCELLED = f"{codes.SD}/modifierextension-infoCancelled"
RELATED_CLAIM_RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship"
#: X12 1322 certification type "Cancel".
CANCEL = "3"
#: The PAS Information Change Mode codes (PASTempCodes); the value set, HEAD and Inferno use ``added`` for new entries.
ADDED = "added"
CHANGED = "changed"
CHANGE_CODES = (ADDED, CHANGED)

Json = dict[str, Any]
Resolver = Callable[[str], str | None]


class Change(Enum):
    """How an entry differs from its version in the immediately prior Claim."""

    ADDED = "added"
    MODIFIED = "modified"
    NEWLY_CANCELLED = "newly-cancelled"
    STILL_CANCELLED = "still-cancelled"
    UNCHANGED = "unchanged"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def extensions(node: Any, url: str, key: str = "extension") -> list[Mapping[str, Any]]:
    if not isinstance(node, Mapping):
        return []
    return [e for e in _list(node.get(key)) if isinstance(e, Mapping) and e.get("url") == url]


def is_cancelled(entry: Any) -> bool:
    """The entry carries ``modifierextension-infoCancelled`` = true."""
    return any(e.get("valueBoolean") is True for e in extensions(entry, EXT_INFO_CANCELLED, "modifierExtension"))


def certification_codes(node: Any) -> set[str]:
    """The certificationType codes on an item or on the Claim itself."""
    found: set[str] = set()
    for ext in extensions(node, codes.EXT_CERTIFICATION_TYPE):
        concept = ext.get("valueCodeableConcept")
        for coding in _list(concept.get("coding") if isinstance(concept, Mapping) else None):
            if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
                found.add(coding["code"])
    return found


def info_changed(entry: Any) -> list[Any]:
    """The valueCodes of the entry's infoChanged extensions (normally none or one)."""
    return [e.get("valueCode") for e in extensions(entry, EXT_INFO_CHANGED)]


def strip_tracking(entry: Mapping[str, Any]) -> Json:
    """A deep copy of ``entry`` without the tracking marks; empty extension lists are dropped."""
    out = copy.deepcopy(dict(entry))
    for key, urls in (("extension", (EXT_INFO_CHANGED, codes.EXT_CERTIFICATION_TYPE)),
                      ("modifierExtension", (EXT_INFO_CANCELLED,))):
        kept = [e for e in _list(out.get(key)) if not (isinstance(e, Mapping) and e.get("url") in urls)]
        if kept:
            out[key] = kept
        else:
            out.pop(key, None)
    return out


def rewrite_references(node: Any, resolve: Resolver) -> Any:
    """A deep copy of ``node`` with each ``reference`` replaced by what ``resolve`` returns (when not None)."""
    if isinstance(node, Mapping):
        out: Json = {}
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and not value.startswith("#"):
                out[key] = resolve(value) or value
            else:
                out[key] = rewrite_references(value, resolve)
        return out
    if isinstance(node, list):
        return [rewrite_references(value, resolve) for value in node]
    return copy.deepcopy(node)


def comparable(entry: Mapping[str, Any], resolve: Resolver) -> str:
    """A canonical form of an entry's substance: tracking marks removed, references resolved, keys sorted."""
    return json.dumps(rewrite_references(strip_tracking(entry), resolve), sort_keys=True, separators=(",", ":"))


def classify(current: Mapping[str, Any] | None, prior: Mapping[str, Any] | None, resolve_current: Resolver,
             resolve_prior: Resolver) -> Change:
    """How ``current`` differs from ``prior`` (either may be absent; both absent is UNCHANGED)."""
    if current is None:
        return Change.UNCHANGED
    if prior is None:
        return Change.ADDED
    if is_cancelled(current):
        return Change.STILL_CANCELLED if is_cancelled(prior) else Change.NEWLY_CANCELLED
    if comparable(current, resolve_current) != comparable(prior, resolve_prior):
        return Change.MODIFIED
    return Change.UNCHANGED


def by_sequence(entries: Any) -> dict[int, Mapping[str, Any]]:
    """Entries keyed by their integer ``sequence`` (entries without one are left out; the checks report them)."""
    out: dict[int, Mapping[str, Any]] = {}
    for entry in _list(entries):
        if isinstance(entry, Mapping) and isinstance(entry.get("sequence"), int):
            out.setdefault(entry["sequence"], entry)
    return out


def certification_extension(code: str, display: str | None = None) -> Json:
    coding: Json = {"system": codes.X12_CERTIFICATION_TYPE, "code": code}
    if display:
        coding["display"] = display
    return {"url": codes.EXT_CERTIFICATION_TYPE, "valueCodeableConcept": {"coding": [coding]}}


def mark(entry: Mapping[str, Any], *, changed: str | None, cancelled: bool, is_item: bool) -> Json:
    """``entry`` without old marks, then with the given ones (cancelled items also get certificationType 3)."""
    out = copy.deepcopy(dict(entry))
    ext = [e for e in _list(out.get("extension")) if not (isinstance(e, Mapping) and e.get("url") == EXT_INFO_CHANGED)]
    modifiers = [e for e in _list(out.get("modifierExtension"))
                 if not (isinstance(e, Mapping) and e.get("url") == EXT_INFO_CANCELLED)]
    if cancelled and is_item:
        cancel = certification_extension(CANCEL, "Cancel")
        positions = [i for i, e in enumerate(ext) if isinstance(e, Mapping) and e.get("url") == cancel["url"]]
        if positions:
            ext[positions[0]] = cancel
            ext = [e for i, e in enumerate(ext) if i not in positions[1:]]
        else:
            ext.append(cancel)
    if changed:
        ext.append({"url": EXT_INFO_CHANGED, "valueCode": changed})
    if cancelled:
        modifiers.append({"url": EXT_INFO_CANCELLED, "valueBoolean": True})
    out.pop("extension", None)
    out.pop("modifierExtension", None)
    # keep FHIR's element order: extension and modifierExtension first
    ordered: Json = {}
    if ext:
        ordered["extension"] = ext
    if modifiers:
        ordered["modifierExtension"] = modifiers
    ordered.update(out)
    return ordered

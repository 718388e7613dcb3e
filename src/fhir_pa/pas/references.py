"""Resolve references inside a Bundle the way FHIR says a reader must (Bundle resolution rules).

``urn:uuid:`` and absolute references match a fullUrl exactly; a relative ``Type/id`` resolves against the
base of the fullUrl of the entry that holds it, and failing that against an entry of that type and id.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

_RELATIVE = re.compile(r"^(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]+)?$")
_RESTFUL = re.compile(r"^(?P<base>https?://.+)/(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})$")


class BundleIndex:
    """Look-ups from fullUrl and from (type, id) to entry positions."""

    def __init__(self, entries: Sequence[Any]) -> None:
        self.entries = entries
        self.by_url: dict[str, list[int]] = defaultdict(list)
        self.by_type_id: dict[tuple[str, str], list[int]] = defaultdict(list)
        for index, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                continue
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str):
                self.by_url[full_url].append(index)
            resource = entry.get("resource")
            if isinstance(resource, Mapping) and isinstance(resource.get("id"), str):
                self.by_type_id[(str(resource.get("resourceType")), resource["id"])].append(index)

    def resource(self, index: int) -> Mapping[str, Any]:
        entry = self.entries[index]
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        return resource if isinstance(resource, Mapping) else {}

    def resolve(self, reference: str, holder_full_url: str | None) -> list[int]:
        """Entry positions ``reference`` resolves to (none, one, or — an error — several)."""
        if reference.startswith(("urn:", "http://", "https://")):
            return list(self.by_url.get(reference, []))
        match = _RELATIVE.match(reference)
        if not match:
            return []
        if holder_full_url:
            restful = _RESTFUL.match(holder_full_url)
            if restful:
                found = self.by_url.get(f"{restful.group('base')}/{match.group('type')}/{match.group('id')}")
                if found:
                    return list(found)
        return list(self.by_type_id.get((match.group("type"), match.group("id")), []))


def full_url_resolver(index: BundleIndex, holder: str | None) -> Callable[[str], str | None]:
    """``reference`` → the fullUrl of the one entry it resolves to from ``holder`` (None when not exactly one)."""
    def resolve(reference: str) -> str | None:
        found = index.resolve(reference, holder)
        if len(found) != 1:
            return None
        entry = index.entries[found[0]]
        full_url = entry.get("fullUrl") if isinstance(entry, Mapping) else None
        return full_url if isinstance(full_url, str) else None
    return resolve


def iter_references(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every ``Reference.reference`` string under ``node``, with its location (contained ``#`` refs skipped)."""
    if isinstance(node, Mapping):
        ref = node.get("reference")
        if isinstance(ref, str) and not ref.startswith("#"):
            yield f"{path}.reference", ref
        for key, value in node.items():
            if key in ("contained", "text"):
                continue
            if isinstance(value, (Mapping, list)):
                yield from iter_references(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from iter_references(value, f"{path}[{index}]")

"""A read-only view of a stored PAS request Bundle: its Claim, and references resolved the way FHIR says.

Reports read requests the client built, but also rows written by other tools and older versions, so nothing
here assumes our own builder's shape beyond what PAS requires (the Claim in the Bundle, references resolvable
by fullUrl or ``Type/id``); what cannot be read is simply absent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from fhir_pa.pas.references import BundleIndex

Json = Mapping[str, Any]


class RequestView:
    def __init__(self, bundle: Json) -> None:
        entries = bundle.get("entry")
        self.entries: list[Any] = entries if isinstance(entries, list) else []
        self.index = BundleIndex(self.entries)
        self.claim: Json = {}
        self.claim_url: str | None = None
        for position, entry in enumerate(self.entries):
            resource = self.index.resource(position)
            if resource.get("resourceType") == "Claim":
                self.claim = resource
                url = entry.get("fullUrl") if isinstance(entry, Mapping) else None
                self.claim_url = url if isinstance(url, str) else None
                break

    @classmethod
    def from_bytes(cls, body: bytes | None) -> RequestView:
        """The view of stored bytes; an empty view when they are not a JSON object."""
        try:
            data = json.loads(body) if body is not None else None
        except (ValueError, UnicodeDecodeError):
            data = None
        return cls(data if isinstance(data, Mapping) else {})

    def resolve(self, reference: Any, holder: str | None) -> tuple[Json, str | None] | None:
        """The resource a Reference (object) points to from the entry at ``holder``, with its fullUrl."""
        target = reference.get("reference") if isinstance(reference, Mapping) else None
        if not isinstance(target, str):
            return None
        found = self.index.resolve(target, holder)
        if len(found) != 1:
            return None
        entry = self.entries[found[0]]
        url = entry.get("fullUrl") if isinstance(entry, Mapping) else None
        return self.index.resource(found[0]), url if isinstance(url, str) else None

    def claim_list(self, key: str) -> Iterator[Json]:
        """The objects in ``Claim[key]`` (a list), skipping anything else."""
        value = self.claim.get(key)
        for element in value if isinstance(value, list) else []:
            if isinstance(element, Mapping):
                yield element

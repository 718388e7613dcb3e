"""Who a request is from and about: sending system id, patient keys, provider NPIs, service codes.

Subscriptions are matched on the sending system id and ``$inquire`` on the patient and provider, so both read
the same facts from a request (or inquiry) Bundle here. Values are kept as plain strings and never logged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from fhir_pa.pas import codes
from fhir_pa.pas.references import BundleIndex
from fhir_pa_sandbox.decide import item_codes

#: Transmission identifier sub-extensions naming the sender, best first (pas.md §2.6: ISA06).
SENDER_PARTS = ("interchangeSenderID", "applicationSenderCode")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def sender_id(claim: Mapping[str, Any]) -> str | None:
    """The sending system id of a Claim: TransmissionIdentifiers interchangeSenderID, else applicationSenderCode."""
    found: dict[str, str] = {}
    for ext in _list(claim.get("extension")):
        if not isinstance(ext, Mapping) or ext.get("url") != codes.EXT_TRANSMISSION_IDS:
            continue
        for part in _list(ext.get("extension")):
            if isinstance(part, Mapping) and isinstance(part.get("valueString"), str):
                found.setdefault(str(part.get("url")), part["valueString"])
    return next((found[name] for name in SENDER_PARTS if found.get(name)), None)


def _identifier_values(resource: Mapping[str, Any]) -> Iterator[tuple[str | None, str]]:
    for identifier in _list(resource.get("identifier")):
        if isinstance(identifier, Mapping) and isinstance(identifier.get("value"), str) and identifier["value"]:
            system = identifier.get("system")
            yield (system if isinstance(system, str) else None), identifier["value"]


def _resolved(index: BundleIndex, holder_url: str | None, reference: Any) -> Mapping[str, Any] | None:
    ref = reference.get("reference") if isinstance(reference, Mapping) else None
    if not isinstance(ref, str):
        return None
    found = index.resolve(ref, holder_url)
    return index.resource(found[0]) if len(found) == 1 else None


class BundleFacts:
    """Facts about the Claim (entry[0]) of a PAS request or inquiry Bundle."""

    def __init__(self, bundle: Mapping[str, Any]) -> None:
        self.entries = _list(bundle.get("entry"))
        self.index = BundleIndex(self.entries)
        self.claim = self.index.resource(0) if self.entries else {}
        first = self.entries[0] if self.entries else None
        url = first.get("fullUrl") if isinstance(first, Mapping) else None
        self.claim_url = url if isinstance(url, str) else None

    def _follow(self, reference: Any) -> Mapping[str, Any] | None:
        return _resolved(self.index, self.claim_url, reference)

    def patient_keys(self) -> frozenset[str]:
        """The patient's identifier values and member ids (Coverage identifiers and subscriberId)."""
        keys: set[str] = set()
        patient = self._follow(self.claim.get("patient"))
        if patient is not None:
            keys.update(value for _, value in _identifier_values(patient))
        for position in range(len(self.entries)):
            resource = self.index.resource(position)
            if resource.get("resourceType") == "Coverage":
                keys.update(value for _, value in _identifier_values(resource))
                if isinstance(resource.get("subscriberId"), str) and resource["subscriberId"]:
                    keys.add(resource["subscriberId"])
        return frozenset(keys)

    def provider_npis(self) -> frozenset[str]:
        """NPIs of the Claim's provider (and, for a PractitionerRole, of its practitioner and organization)."""
        provider = self._follow(self.claim.get("provider"))
        if provider is None:
            return frozenset()
        holders = [provider]
        if provider.get("resourceType") == "PractitionerRole":
            holders += [found for found in (self._follow(provider.get(key)) for key in ("practitioner",
                                                                                        "organization")) if found]
        return frozenset(value for holder in holders for system, value in _identifier_values(holder)
                         if system == codes.NPI)

    def service_codes(self) -> frozenset[str]:
        return frozenset(code for item in _list(self.claim.get("item")) if isinstance(item, Mapping)
                         for code in item_codes(item))

    def sender_id(self) -> str | None:
        return sender_id(self.claim)

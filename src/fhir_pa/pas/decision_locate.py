"""Turn a payer's bytes into the ClaimResponse to explain, or a clear :class:`InvalidResponse`.

Accepted wrappers (pas.md §2.4, §2.7, §2.9): a PAS response Bundle (ClaimResponse first, tolerated
elsewhere), a ``$inquire`` Parameters with response Bundles under any parameter name, a subscription
notification (history Bundle whose focus is a nested response Bundle or a ClaimResponse), and, with a
warning, a bare ClaimResponse. An OperationOutcome is an error: the payer refused the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from fhir_pa.errors import InvalidResponse
from fhir_pa.pas.decision_fields import FieldReader, Json
from fhir_pa.pas.references import BundleIndex

#: How deep Bundles may nest (notification → response Bundle → …) before we stop looking.
MAX_NESTING = 3


@dataclass(frozen=True)
class Located:
    """The ClaimResponse to read, with the Bundle that holds it (for references) and its fullUrl."""

    claim_response: Json
    full_url: str | None
    bundle: Json | None


def _outcome_summary(outcome: Json) -> str:
    """The first issue of an OperationOutcome, in one short line."""
    issues = outcome.get("issue")
    first = issues[0] if isinstance(issues, list) and issues and isinstance(issues[0], Mapping) else {}
    details = first.get("details")
    details_text = details.get("text") if isinstance(details, Mapping) else None
    label = " ".join(p for p in (first.get("severity"), first.get("code")) if isinstance(p, str) and p.strip())
    text = first.get("diagnostics") or details_text
    text = text if isinstance(text, str) else ""
    summary = " ".join(f"{label}: {text}".strip(": ").split()) if label else " ".join(text.split())
    return (summary[:197] + "...") if len(summary) > 200 else (summary or "no issue given")


def _resource(entry: Json) -> Json | None:
    resource = entry.get("resource")
    return resource if isinstance(resource, Mapping) else None


def _full_url(entry: Json) -> str | None:
    full_url = entry.get("fullUrl")
    return full_url if isinstance(full_url, str) else None


class _Locator:
    """Finds the ClaimResponse in one parsed document; ``source`` names it in errors."""

    def __init__(self, source: str, reader: FieldReader) -> None:
        self.source = source
        self.reader = reader

    def nothing_found(self, bundle: Json) -> NoReturn:
        entries = bundle.get("entry")
        first = entries[0] if isinstance(entries, list) and entries and isinstance(entries[0], Mapping) else {}
        if (_resource(first) or {}).get("resourceType") == "Claim":
            raise InvalidResponse(f"{self.source} is a PAS request Bundle (its first entry is a Claim), "
                                  "not a response", path="Bundle.entry")
        raise InvalidResponse(f"{self.source} is a Bundle without a ClaimResponse", path="Bundle.entry")

    def document(self, document: Json) -> Located:
        resource_type = document.get("resourceType")
        if resource_type == "OperationOutcome":
            raise InvalidResponse(f"payer returned an OperationOutcome, not a PAS response: "
                                  f"{_outcome_summary(document)}")
        if resource_type == "Bundle":
            return self.bundle(document, "Bundle", 0) or self.nothing_found(document)
        if resource_type == "Parameters":
            return self.parameters(document)
        if resource_type == "ClaimResponse":
            self.reader.warn("a bare ClaimResponse, not a PAS response Bundle")
            return Located(document, None, None)
        found = f"a {resource_type}" if isinstance(resource_type, str) and resource_type else \
            "a JSON object without a resourceType"
        raise InvalidResponse(f"{self.source} is {found}, not a PAS response Bundle", path="resourceType")

    def entries(self, bundle: Json, where: str) -> list[tuple[int, Json]]:
        """The entry objects of ``bundle`` with their positions; anything else is skipped with a warning."""
        value = bundle.get("entry")
        if value is None:
            return []
        if not isinstance(value, list):
            self.reader.wrong(f"{where}.entry", value, "a list")
            return []
        found: list[tuple[int, Json]] = []
        for position, entry in enumerate(value):
            if isinstance(entry, Mapping):
                found.append((position, entry))
            else:
                self.reader.wrong(f"{where}.entry[{position}]", entry, "an object")
        return found

    def bundle(self, bundle: Json, where: str, depth: int) -> Located | None:
        """The ClaimResponse in ``bundle`` (a response Bundle or a notification), or None."""
        entries = self.entries(bundle, where)
        first = _resource(entries[0][1]) if entries and entries[0][0] == 0 else None
        if bundle.get("type") == "history" and first is not None and first.get("resourceType") == "Parameters":
            return self.notification(bundle, entries, first, where, depth)
        return self.search(bundle, entries, where, depth, expect_first=True)

    def search(self, bundle: Json, entries: list[tuple[int, Json]], where: str, depth: int, *,
               expect_first: bool) -> Located | None:
        """The first ClaimResponse among ``entries``, else the first inside a nested Bundle."""
        claim_responses = [(position, entry) for position, entry in entries
                           if (_resource(entry) or {}).get("resourceType") == "ClaimResponse"]
        if claim_responses:
            position, entry = claim_responses[0]
            if expect_first and position != 0:
                self.reader.warn(f"the ClaimResponse is {where}.entry[{position}], not the first entry")
            if len(claim_responses) > 1:
                self.reader.warn(f"{where} holds {len(claim_responses)} ClaimResponses; read the first")
            return Located(_resource(entry) or {}, _full_url(entry), bundle)
        if depth >= MAX_NESTING:
            return None
        for position, entry in entries:
            inner = _resource(entry)
            if inner is not None and inner.get("resourceType") == "Bundle":
                inner_where = f"{where}.entry[{position}].resource"
                found = self.bundle(inner, inner_where, depth + 1)
                if found is not None:
                    self.reader.warn(f"read the ClaimResponse from the Bundle nested at {inner_where}")
                    return found
        return None

    def notification(self, bundle: Json, entries: list[tuple[int, Json]], status: Json, where: str,
                     depth: int) -> Located:
        """A subscription notification: follow its focus to the response Bundle or ClaimResponse."""
        kind_, focus = _notification_fields(status)
        located = self.focus(bundle, entries, focus, where, depth) if focus else None
        if located is not None:
            return located
        fallback = self.search(bundle, entries[1:], where, depth, expect_first=False)
        if fallback is None:
            raise InvalidResponse(f"{self.source} is a subscription notification ({kind_ or 'no type'}) without "
                                  "a PAS response; fetch it with $inquire", path="Bundle.entry")
        self.reader.warn("the notification's focus does not point at the response; read the first ClaimResponse")
        return fallback

    def focus(self, bundle: Json, entries: list[tuple[int, Json]], focus: str, where: str,
              depth: int) -> Located | None:
        raw_entries = bundle.get("entry")
        index = BundleIndex(raw_entries if isinstance(raw_entries, list) else [])
        for position in index.resolve(focus, None)[:1]:
            entry = raw_entries[position] if isinstance(raw_entries, list) else {}
            resource = _resource(entry) or {}
            if resource.get("resourceType") == "ClaimResponse":
                return Located(resource, _full_url(entry), bundle)
            if resource.get("resourceType") == "Bundle" and depth < MAX_NESTING:
                return self.bundle(resource, f"{where}.entry[{position}].resource", depth + 1)
        for position, entry in entries:  # reference implementation: nested Bundle without a fullUrl
            inner = _resource(entry)
            if inner is None or inner.get("resourceType") != "Bundle":
                continue
            for _, inner_entry in self.entries(inner, f"{where}.entry[{position}].resource"):
                resource = _resource(inner_entry) or {}
                resource_id = resource.get("id")
                if resource.get("resourceType") == "ClaimResponse" and (
                        _full_url(inner_entry) == focus
                        or (isinstance(resource_id, str) and focus.endswith(f"ClaimResponse/{resource_id}"))):
                    return Located(resource, _full_url(inner_entry), inner)
        return None

    def parameters(self, parameters: Json) -> Located:
        """``$inquire`` output: response Bundle(s) under any parameter name (``return``, ``responseBundle``)."""
        bundles: list[Json] = []
        for path, parameter in self.reader.objects(parameters, "parameter", "Parameters"):
            resource = self.reader.obj(parameter, "resource", path)
            if resource is None:
                continue
            if resource.get("resourceType") == "Bundle":
                bundles.append(resource)
            elif resource.get("resourceType") == "OperationOutcome":
                self.reader.warn(f"{path} is an OperationOutcome: the payer may have withheld some results")
            elif resource.get("resourceType") == "ClaimResponse":
                bundles.append({"resourceType": "Bundle", "entry": [{"resource": resource}]})
        if not bundles:
            raise InvalidResponse(f"{self.source} is a Parameters without a PAS response Bundle",
                                  path="Parameters.parameter")
        if len(bundles) > 1:
            self.reader.warn(f"the Parameters holds {len(bundles)} response Bundles; read the first")
        return self.bundle(bundles[0], "Parameters.parameter.resource", 1) or self.nothing_found(bundles[0])


def _maps(value: Any) -> list[Json]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _notification_fields(status: Json) -> tuple[str | None, str | None]:
    """(notification type, first focus reference) from a SubscriptionStatus Parameters."""
    kind_: str | None = None
    focus: str | None = None
    for parameter in _maps(status.get("parameter")):
        name = parameter.get("name")
        if name == "type" and isinstance(parameter.get("valueCode"), str):
            kind_ = parameter["valueCode"]
        elif name == "notification-event" and focus is None:
            for part in _maps(parameter.get("part")):
                reference = part.get("valueReference")
                if part.get("name") == "focus" and isinstance(reference, Mapping) \
                        and isinstance(reference.get("reference"), str):
                    focus = reference["reference"]
                    break
    return kind_, focus


def locate_claim_response(document: Json, source: str, reader: FieldReader) -> Located:
    """The ClaimResponse to read in ``document``; InvalidResponse when there is none."""
    return _Locator(source, reader).document(document)

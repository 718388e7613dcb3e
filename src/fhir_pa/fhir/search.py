"""FHIR R4 search over resources in memory: the small subset the CRD prefetch queries need.

Pure functions, so the in-memory EHR (:mod:`fhir_pa.fhir.memory`) and a Starlette-served sandbox EHR answer the
same query the same way. Supported parameters (several combine with AND, a comma inside one value with OR):

- ``_id``: the resource id;
- ``patient``: a Patient reference in ``patient``, ``subject`` or ``beneficiary`` (``Patient/x`` or ``x``);
- ``subject`` / ``beneficiary``: a reference in that element (``Type/x``, or ``x`` for any type);
- ``status``: the ``status`` code;
- ``identifier``: ``system|value``, ``|value`` (no system), ``system|`` (any value) or ``value`` (any system);
- ``_count`` / ``_offset``: page size and start (``_offset`` is the common non-standard paging parameter);
- ``_format``: accepted and ignored (the answer is always JSON).

Anything else, a modifier (``name:exact``) or an empty value is refused with :class:`SearchError` (HTTP 400):
a server that ignored it would silently answer a wider query, which is the prefetch bug we test against.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fhir_pa.errors import InputError

#: Parameters that select resources.
CRITERIA = ("_id", "patient", "subject", "beneficiary", "status", "identifier")
#: Parameters that shape the answer.
CONTROL = ("_count", "_offset", "_format")
#: Elements the ``patient`` parameter looks at, across resource types (Coverage uses ``beneficiary``).
PATIENT_ELEMENTS = ("patient", "subject", "beneficiary")


class SearchError(InputError):
    """A search the store refuses with HTTP 400; ``parameter`` names the offending parameter."""

    code = "search"

    def __init__(self, message: str, *, parameter: str) -> None:
        self.parameter = parameter
        super().__init__(message, path=parameter)


@dataclass(frozen=True)
class SearchQuery:
    """A parsed search: AND over ``criteria`` (name, OR-alternatives), then one page of ``count`` from ``offset``."""

    criteria: tuple[tuple[str, tuple[str, ...]], ...]
    count: int | None = None
    offset: int = 0


def parse_search(params: Iterable[tuple[str, str]]) -> SearchQuery:
    """Check and parse decoded query parameters; raises :class:`SearchError` for anything not supported."""
    criteria: list[tuple[str, tuple[str, ...]]] = []
    count: int | None = None
    offset = 0
    for name, value in params:
        if name not in CRITERIA and name not in CONTROL:
            raise SearchError(f"search parameter {name!r} is not supported "
                              f"(supported: {', '.join(CRITERIA + CONTROL)})", parameter=name)
        if value == "":
            raise SearchError(f"search parameter {name!r} has an empty value", parameter=name)
        if name == "_format":
            continue
        if name in ("_count", "_offset"):
            number = _non_negative(name, value)
            if name == "_count":
                count = number
            else:
                offset = number
            continue
        alternatives = tuple(part for part in value.split(",") if part)
        if not alternatives:
            raise SearchError(f"search parameter {name!r} has an empty value", parameter=name)
        criteria.append((name, alternatives))
    return SearchQuery(tuple(criteria), count, offset)


def _non_negative(name: str, value: str) -> int:
    if not value.isdigit():
        raise SearchError(f"search parameter {name!r} must be a non-negative integer", parameter=name)
    return int(value)


def matches(resource: Mapping[str, Any], query: SearchQuery) -> bool:
    """True when ``resource`` satisfies every criterion of ``query``."""
    return all(any(_matches_one(resource, name, alternative) for alternative in alternatives)
               for name, alternatives in query.criteria)


def _matches_one(resource: Mapping[str, Any], name: str, value: str) -> bool:
    if name == "_id":
        return resource.get("id") == value
    if name == "status":
        return resource.get("status") == value
    if name == "identifier":
        return identifier_matches(resource.get("identifier"), value)
    if name == "patient":
        return any(reference_matches(ref, value, default_type="Patient", require_type="Patient")
                   for element in PATIENT_ELEMENTS for ref in _references(resource.get(element)))
    return any(reference_matches(ref, value) for ref in _references(resource.get(name)))


def _references(element: Any) -> list[str]:
    items = element if isinstance(element, list) else [element]
    return [item["reference"] for item in items
            if isinstance(item, Mapping) and isinstance(item.get("reference"), str)]


def reference_target(reference: str) -> tuple[str, str] | None:
    """``(type, id)`` of a literal reference (relative, absolute, or with ``/_history/v``); None when not one."""
    parts = [part for part in reference.split("?")[0].split("/") if part]
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2 or not parts[-2][:1].isupper():
        return None
    return parts[-2], parts[-1]


def reference_matches(reference: str, value: str, *, default_type: str | None = None,
                      require_type: str | None = None) -> bool:
    """True when ``reference`` (from a resource) points where the search ``value`` (``Type/id`` or ``id``) does."""
    target = reference_target(reference)
    if target is None:
        return False
    wanted = reference_target(value) if "/" in value else (default_type, value)
    if wanted is None:
        return False
    wanted_type, wanted_id = wanted
    if require_type is not None and target[0] != require_type:
        return False
    return target[1] == wanted_id and (wanted_type is None or target[0] == wanted_type)


def identifier_matches(identifiers: Any, token: str) -> bool:
    """True when one of ``identifiers`` (an Identifier or a list) matches the token."""
    items = identifiers if isinstance(identifiers, list) else [identifiers]
    system, bar, value = token.rpartition("|") if "|" in token else ("", "", token)
    for item in items:
        if not isinstance(item, Mapping):
            continue
        if bar and (item.get("system") or "") != system:
            continue
        if value == "" or item.get("value") == value:
            return True
    return False


def search_bundle(resources: Iterable[Mapping[str, Any]], resource_type: str,
                  params: Sequence[tuple[str, str]], *, base_url: str) -> dict[str, Any]:
    """The ``searchset`` Bundle answering ``GET [base_url]/resource_type?params`` over ``resources``.

    ``total`` counts every match; ``entry`` holds one page (copies, so callers cannot change the store), with a
    ``next`` link when more matches follow. Raises :class:`SearchError` for an unsupported query.
    """
    query = parse_search(params)
    found = [resource for resource in resources
             if resource.get("resourceType") == resource_type and matches(resource, query)]
    end = len(found) if query.count is None else query.offset + query.count
    page = found[query.offset:end]
    base = base_url.rstrip("/")
    links = [{"relation": "self", "url": _page_url(base, resource_type, params, None)}]
    if end < len(found):
        links.append({"relation": "next", "url": _page_url(base, resource_type, params, end)})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "link": links,
        "entry": [{"fullUrl": f"{base}/{resource_type}/{resource.get('id')}", "resource": copy.deepcopy(resource),
                   "search": {"mode": "match"}} for resource in page],
    }


def _page_url(base: str, resource_type: str, params: Sequence[tuple[str, str]], offset: int | None) -> str:
    kept = [(name, value) for name, value in params if not (offset is not None and name == "_offset")]
    if offset is not None:
        kept.append(("_offset", str(offset)))
    query = urlencode(kept, safe=",|/")
    return f"{base}/{resource_type}?{query}" if query else f"{base}/{resource_type}"


def operation_outcome(code: str, diagnostics: str, *, expression: str | None = None) -> dict[str, Any]:
    """A one-issue error OperationOutcome (for 4xx answers of a FHIR store)."""
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


__all__ = [
    "CONTROL",
    "CRITERIA",
    "SearchError",
    "SearchQuery",
    "identifier_matches",
    "matches",
    "operation_outcome",
    "parse_search",
    "reference_matches",
    "reference_target",
    "search_bundle",
]

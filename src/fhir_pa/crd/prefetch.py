"""CDS Hooks prefetch for CRD 2.2: fill a service's prefetch templates from the hook context and the EHR's FHIR API.

CRD 2.2 makes the standard prefetch mandatory (found-23..25) and Inferno re-runs every query we report, so the
rules below are the contract:

- Templates come from the service's discovery document; keys are evaluated **in declared order**, so ``%key``
  may only name an earlier key. A later or unknown key, or a cycle, makes that key unsatisfiable.
- A token ``{{...}}`` is a user token (``userPractitionerId``, ``userPractitionerRoleId``, ``userPatientId``,
  ``userRelatedPersonId``, from ``user_id``) or FHIRPath (fhirpathpy, FHIR R4 model) over ``{"context": ...}``
  with ``%key`` bound to the earlier key's result. A collection becomes a de-duplicated comma-separated list.
- ``resolve()`` looks a Reference up in the context's resources (Bundle entries, contained), then in earlier
  prefetch results, then on the EHR. It never does I/O itself: unknown targets are collected, fetched by the flow
  (one ``_id`` search per type, reads as fallback), and the token is evaluated again.
- A token with no value means "no data": the key's value is ``None`` and **no query is sent** (an empty
  ``_id=`` could return everything). A read answered 404/410 is also ``None``.
- A key whose query fails (HTTP error, transport error, wrong answer) or whose token cannot be evaluated is left
  out of ``values`` and listed in ``omitted`` with a reason; only ``values`` is sent to the service.
- Coverage: a search on ``Coverage`` is narrowed to exactly one entry, the primary coverage (see
  :func:`primary_coverage`); none that qualifies means ``None``.

Values (patient data) and queries (they carry patient ids) are never logged; reasons name only key names,
template expressions, resource types and HTTP statuses.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import logging
import math
import re
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast
from urllib.parse import parse_qsl, quote

import fhirpathpy
import httpx
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from fhir_pa.errors import InputError
from fhir_pa.fhir.datasource import check_base_url
from fhir_pa.fhir.flow import Action, Flow, call, run_async, run_sync
from fhir_pa.fhir.search import reference_target

log = logging.getLogger(__name__)

#: Per-request timeout (seconds) for the EHR reads, so a stuck EHR cannot eat the hook's time budget.
DEFAULT_TIMEOUT = 10.0
#: Pages of a search result we follow (and merge) before sending what we have.
MAX_PAGES = 20
#: Rounds of "evaluate, fetch what resolve() missed, evaluate again" (the depth of chained resolve() calls).
MAX_ROUNDS = 8

USER_TOKENS = {"userPractitionerId": "Practitioner", "userPractitionerRoleId": "PractitionerRole",
               "userPatientId": "Patient", "userRelatedPersonId": "RelatedPerson"}
#: FHIRPath environment variables that are not prefetch keys.
BUILTIN_VARIABLES = frozenset({"context", "ucum", "resource", "rootResource", "sct", "loinc"})

_TOKEN = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'")
_VARIABLE = re.compile(r"%(?:([A-Za-z_][A-Za-z0-9_]*)|`([^`]+)`)")
_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
#: What a token may put into the path of a read: an id, or ``Type/id`` (a whole-reference token like userId).
_PATH_VALUE = re.compile(r"^(?:[A-Z][A-Za-z]{1,63}/)?[A-Za-z0-9\-.]{1,64}$")
_ACCEPT = {"Accept": "application/fhir+json"}
_R4: dict[str, Any] = models["r4"]
_create_node = cast(Any, ResourceNode).create_node


@dataclass(frozen=True)
class PrefetchResult:
    """What the engine produced for one hook call.

    ``values`` is the request's ``prefetch`` object (key → resource, searchset Bundle, or None for "no data");
    ``omitted`` says why each unsatisfied key is absent from it; ``queries`` is the exact relative query run for
    each key that reached the EHR (what Inferno re-runs to check equivalence).
    """

    values: dict[str, Any | None] = field(default_factory=dict)
    omitted: dict[str, str] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)
    hook: str = ""


class _KeyProblem(Exception):
    """This key cannot be satisfied; the message is the (patient-data free) reason."""


def prefetch_flow(templates: Mapping[str, str], context: Mapping[str, Any], *, fhir_base: str, hook: str,
                  user_id: str | None = None, request_timeout: float | None = DEFAULT_TIMEOUT) -> Flow[PrefetchResult]:
    """The prefetch protocol as a flow; drive it with :func:`~fhir_pa.fhir.flow.run_sync` or ``run_async``.

    ``user_id`` (``Practitioner/x`` etc.) feeds the user tokens; it defaults to ``context.userId``.
    ``request_timeout`` bounds each EHR request: a client's default timeout only applies to requests it builds
    itself, not to the ones a flow hands it. Raises InputError for arguments of the wrong shape and
    ConfigurationError for a bad ``fhir_base``, before any I/O.
    """
    if not isinstance(templates, Mapping):
        raise InputError("prefetch templates must be an object of key → template", path="prefetch")
    if not isinstance(context, Mapping):
        raise InputError("hook context must be an object", path="context")
    base = check_base_url(fhir_base)
    if user_id is None and isinstance(context.get("userId"), str):
        user_id = context["userId"]
    return _Engine(dict(templates), context, base, hook, user_id, request_timeout).run()


def prefetch(templates: Mapping[str, str], context: Mapping[str, Any], *, fhir_base: str, hook: str,
             http: httpx.Client, user_id: str | None = None, auth: httpx.Auth | None = None,
             request_timeout: float | None = DEFAULT_TIMEOUT) -> PrefetchResult:
    """Run :func:`prefetch_flow` with a blocking client."""
    flow = prefetch_flow(templates, context, fhir_base=fhir_base, hook=hook, user_id=user_id,
                         request_timeout=request_timeout)
    return run_sync(flow, http, auth)


async def aprefetch(templates: Mapping[str, str], context: Mapping[str, Any], *, fhir_base: str, hook: str,
                    http: httpx.AsyncClient, user_id: str | None = None, auth: httpx.Auth | None = None,
                    request_timeout: float | None = DEFAULT_TIMEOUT) -> PrefetchResult:
    """Run :func:`prefetch_flow` with an async client."""
    flow = prefetch_flow(templates, context, fhir_base=fhir_base, hook=hook, user_id=user_id,
                         request_timeout=request_timeout)
    return await run_async(flow, http, auth)


# --- Coverage ----------------------------------------------------------------------------------------------


def primary_coverage(bundle: Mapping[str, Any], patient_id: str | None, *,
                     fhir_base: str | None = None) -> dict[str, Any] | None:
    """``bundle`` narrowed to the one primary Coverage (CRD 2.2: prefetch Coverage is a single instance), or None.

    The rule: among the entries that are a Coverage with ``status = active`` whose ``beneficiary.reference`` is
    ``Patient/{patient_id}`` (or that under ``fhir_base``), take the lowest ``order`` (coverages without one come
    after those with one), and among equals the first in the server's order. The answer keeps the server's
    Bundle (links, fullUrl, search mode) with that single entry and ``total = 1``.
    """
    entries = bundle.get("entry")
    beneficiaries = {f"Patient/{patient_id}", f"{fhir_base}/Patient/{patient_id}"} if patient_id else None
    candidates: list[tuple[float, int, Any]] = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping) or resource.get("resourceType") != "Coverage":
            continue
        if resource.get("status") != "active":
            continue
        beneficiary = resource.get("beneficiary")
        reference = beneficiary.get("reference") if isinstance(beneficiary, Mapping) else None
        if beneficiaries is not None and reference not in beneficiaries:
            continue
        order = resource.get("order")
        rank = float(order) if isinstance(order, int) and not isinstance(order, bool) else math.inf
        candidates.append((rank, index, entry))
    if not candidates:
        return None
    chosen = min(candidates, key=lambda item: (item[0], item[1]))[2]
    narrowed = {key: copy.deepcopy(value) for key, value in bundle.items() if key != "entry"}
    narrowed["total"] = 1
    narrowed["entry"] = [copy.deepcopy(chosen)]
    if isinstance(narrowed.get("link"), list):
        narrowed["link"] = [link for link in narrowed["link"] if not (isinstance(link, Mapping)
                                                                      and link.get("relation") == "next")]
    return narrowed


# --- references --------------------------------------------------------------------------------------------


#: The resolver of the evaluation running in this thread or task: compiled expressions are shared across calls,
#: so their ``resolve()`` finds the right one here rather than through a closure.
_ACTIVE: contextvars.ContextVar[_Resolver] = contextvars.ContextVar("fhir_pa_prefetch_resolver")


def _resolve(inputs: list[Any]) -> list[Any]:
    return _ACTIVE.get().function(inputs)


@functools.lru_cache(maxsize=1024)
def _compiled(source: str) -> Callable[..., list[Any]]:
    """A template token compiled once per process (parsing FHIRPath costs far more than evaluating it)."""
    return cast(Callable[..., list[Any]], fhirpathpy.compile(source, _R4, {"userInvocationTable": {
        "resolve": {"fn": _resolve, "arity": {0: []}}}}))


class _Resolver:
    """``resolve()`` for fhirpathpy: answers from what is known, records what must be fetched, fetches it."""

    def __init__(self, base: str, context: Any, timeout: float | None) -> None:
        self.base = base
        self.timeout = timeout
        self.local: dict[str, Any] = {}       # context resources: "Type/id", fullUrl, "#id" (contained)
        self.results: dict[str, Any] = {}     # earlier prefetch results
        self.fetched: dict[str, Any] = {}     # EHR answers; None = the EHR has no such resource
        self.failed: dict[str, str] = {}      # "Type/id" → why fetching it failed
        self.missing: set[tuple[str, str]] = set()
        contained: dict[str, list[Any]] = {}
        _index(context, self.local, contained)
        for cid, found in contained.items():
            if len(found) == 1:  # ids of contained resources are local; an ambiguous one resolves to nothing
                self.local[f"#{cid}"] = found[0]

    def add_result(self, value: Any) -> None:
        _index(value, self.results, {})

    def function(self, inputs: list[Any]) -> list[Any]:
        found: list[Any] = []
        for item in inputs:
            reference = item.get("reference") if isinstance(item, Mapping) else item
            if isinstance(reference, str):
                target = self._lookup(reference)
                if target is not None:
                    found.append(_create_node(target))
        return found

    def _lookup(self, reference: str) -> Any:
        if reference in self.local:
            return self.local[reference]
        if reference.startswith("#"):
            return None
        relative = reference
        if "://" in reference or reference.startswith("urn:"):
            if reference in self.results:
                return self.results[reference]
            if not reference.startswith(self.base + "/"):
                return None  # another server's resource: never sent our token to fetch it
            relative = reference[len(self.base) + 1:]
        target = reference_target(relative)
        if target is None or not _TYPE.match(target[0]) or not _ID.match(target[1]):
            return None
        key = f"{target[0]}/{target[1]}"
        for known in (self.local, self.results, self.fetched):
            if key in known:
                return known[key]
        if key in self.failed:
            raise _KeyProblem(self.failed[key])
        self.missing.add(target)
        return None

    def evaluate(self, expression: Callable[..., list[Any]], root: Any, env: dict[str, Any],
                 source: str) -> Generator[Action, httpx.Response | None, list[Any]]:
        for _ in range(MAX_ROUNDS):
            self.missing = set()
            active = _ACTIVE.set(self)
            try:
                result = expression(root, env)
            except _KeyProblem:
                raise
            except Exception as exc:  # fhirpathpy raises bare exceptions for what it cannot evaluate
                raise _KeyProblem(f"cannot evaluate the token {{{{{source}}}}} ({type(exc).__name__})") from None
            finally:
                _ACTIVE.reset(active)
            if not self.missing:
                return result
            yield from self._fetch(sorted(self.missing))
        raise _KeyProblem(f"references in the token {{{{{source}}}}} are nested too deeply to resolve")

    def _fetch(self, targets: list[tuple[str, str]]) -> Generator[Action, httpx.Response | None, None]:
        by_type: dict[str, list[str]] = {}
        for kind, rid in targets:
            by_type.setdefault(kind, []).append(rid)
        for kind, ids in by_type.items():
            left = ids
            if len(ids) > 1:
                left = yield from self._search(kind, ids)
            for rid in left:
                yield from self._read(kind, rid)

    def _search(self, kind: str, ids: list[str]) -> Generator[Action, httpx.Response | None, list[str]]:
        """One ``_id`` search for several targets; returns the ids still to read one by one."""
        url = f"{self.base}/{kind}?_id={','.join(ids)}&_count={len(ids)}"
        response = yield from self._get(url, kind)
        bundle = _json(response) if response.status_code == 200 else None
        if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
            return ids  # some servers do not search every type by _id: fall back to reads
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, Mapping) else None
            if isinstance(resource, Mapping) and resource.get("resourceType") == kind and resource.get("id") in ids:
                self.fetched[f"{kind}/{resource['id']}"] = resource
        left = [rid for rid in ids if f"{kind}/{rid}" not in self.fetched]
        if _has_next(bundle):
            return left
        for rid in left:
            self.fetched[f"{kind}/{rid}"] = None
        return []

    def _read(self, kind: str, rid: str) -> Generator[Action, httpx.Response | None, None]:
        key = f"{kind}/{rid}"
        response = yield from self._get(f"{self.base}/{quote(kind)}/{quote(rid)}", kind)
        if response.status_code in (404, 410):
            self.fetched[key] = None
            return
        resource = _json(response) if response.status_code == 200 else None
        if not isinstance(resource, Mapping) or resource.get("resourceType") != kind or resource.get("id") != rid:
            reason = (f"resolving a {kind} reference failed: HTTP {response.status_code}" if response.status_code
                      != 200 else f"resolving a {kind} reference: the EHR answered something else")
            self.failed[key] = reason
            raise _KeyProblem(reason)
        self.fetched[key] = resource

    def _get(self, url: str, kind: str) -> Generator[Action, httpx.Response | None, httpx.Response]:
        try:
            return (yield from call(_request(url, self.timeout)))
        except httpx.TransportError as exc:
            raise _KeyProblem(f"resolving a {kind} reference failed: {type(exc).__name__}") from None


def _index(value: Any, into: dict[str, Any], contained: dict[str, list[Any]]) -> None:
    """Index every resource inside ``value`` by ``Type/id`` and ``fullUrl`` (first one wins)."""
    if isinstance(value, list):
        for item in value:
            _index(item, into, contained)
        return
    if not isinstance(value, Mapping):
        return
    kind, rid = value.get("resourceType"), value.get("id")
    if isinstance(kind, str) and isinstance(rid, str):
        into.setdefault(f"{kind}/{rid}", value)
    full_url = value.get("fullUrl")
    if isinstance(full_url, str) and isinstance(value.get("resource"), Mapping):
        into.setdefault(full_url, value["resource"])
    for name, item in value.items():
        if name == "contained" and isinstance(item, list):
            # only "#id" reaches a contained resource: it is not "Type/id" on any server
            for inner in item:
                if isinstance(inner, Mapping) and isinstance(inner.get("id"), str):
                    contained.setdefault(inner["id"], []).append(inner)
            continue
        _index(item, into, contained)


# --- the engine --------------------------------------------------------------------------------------------


class _Engine:
    def __init__(self, templates: dict[str, Any], context: Mapping[str, Any], base: str, hook: str,
                 user_id: str | None, timeout: float | None) -> None:
        self.templates = templates
        self.base = base
        self.hook = hook
        self.timeout = timeout
        self.root = {"context": copy.deepcopy(dict(context))}
        patient = context.get("patientId")
        self.patient_id = patient if isinstance(patient, str) else None
        self.user = _user_tokens(user_id)
        self.resolver = _Resolver(base, self.root["context"], timeout)
        self.env: dict[str, Any] = {}
        self.order = list(templates)
        self.dependencies = {key: {name for token in _TOKEN.findall(value) for name in _variables(token)}
                             if isinstance(value, str) else set() for key, value in templates.items()}
        self.result = PrefetchResult(hook=hook)

    def run(self) -> Flow[PrefetchResult]:
        for key in self.order:
            try:
                self._check_dependencies(key)
                value = yield from self._key(key)
            except _KeyProblem as problem:
                self.result.omitted[key] = str(problem)
                log.debug("prefetch %s (%s): omitted: %s", key, self.hook, problem)
                continue
            self.result.values[key] = value
            self.env[key] = copy.deepcopy(value)
            if value is not None:
                self.resolver.add_result(self.env[key])
            log.debug("prefetch %s (%s): %s", key, self.hook, "no data" if value is None else "filled")
        return self.result

    def _check_dependencies(self, key: str) -> None:
        template = self.templates[key]
        if not isinstance(template, str):
            raise _KeyProblem("the template is not a string")
        for name in sorted(self.dependencies[key]):
            if name not in self.templates:
                if name in BUILTIN_VARIABLES:
                    continue
                raise _KeyProblem(f"the template refers to %{name}, which is not a prefetch key of this service")
            cycle = self._cycle(key, name)
            if cycle:
                raise _KeyProblem(f"the template is part of a %key cycle ({' → '.join(cycle)})")
            if self.order.index(name) >= self.order.index(key):
                raise _KeyProblem(f"the template refers to %{name}, which is declared later "
                                  f"(keys are evaluated in declared order)")
            if name in self.result.omitted:
                raise _KeyProblem(f"the template depends on %{name}, which was not satisfied")

    def _cycle(self, key: str, start: str) -> list[str]:
        """The %key path from ``start`` back to ``key`` (a cycle through ``key``), or []."""
        stack: list[tuple[str, list[str]]] = [(start, [key, start])]
        seen: set[str] = set()
        while stack:
            name, path = stack.pop()
            if name == key:
                return path
            if name in seen:
                continue
            seen.add(name)
            for nxt in sorted(self.dependencies.get(name, ())):
                if nxt in self.templates:
                    stack.append((nxt, [*path, nxt]))
        return []

    def _key(self, key: str) -> Generator[Action, httpx.Response | None, Any]:
        template: str = self.templates[key]
        query = yield from self._fill(template)
        if query is None:
            return None
        query = query.lstrip("/")
        if ":" in query.split("?")[0].split("/")[0]:
            raise _KeyProblem("the template is not a query relative to the FHIR server")
        self.result.queries[key] = query
        path, mark, _ = query.partition("?")
        segments = path.split("/")
        known = self._known_by_id(query)
        if known is not None:  # the resource was read already in this run: the same answer, one request fewer
            return known
        response = yield from self._send(f"{self.base}/{query}")
        if not mark and len(segments) == 2:
            return self._read_answer(response, segments[0], segments[1])
        if len(segments) == 1:
            bundle = yield from self._search_answer(response)
            if segments[0] == "Coverage":
                return primary_coverage(bundle, self.patient_id, fhir_base=self.base)
            return bundle
        body = _json(response) if response.is_success else None
        if not isinstance(body, Mapping) or not isinstance(body.get("resourceType"), str):
            raise _KeyProblem(_failure(response, "a FHIR resource"))
        return body

    def _known_by_id(self, query: str) -> dict[str, Any] | None:
        """``Type?_id=x`` (nothing else but ``_count``) answered from a read of ``Type/x`` made earlier in this run,
        as the searchset the server would send; None when the query is anything else or ``Type/x`` was not read."""
        path, _, text = query.partition("?")
        if "/" in path or path == "Coverage" or not text:
            return None
        params = parse_qsl(text, keep_blank_values=True)
        ids = [value for name, value in params if name == "_id"]
        if len(ids) != 1 or "," in ids[0] or any(name not in ("_id", "_count") for name, _ in params):
            return None
        key = f"{path}/{ids[0]}"
        if key not in self.resolver.fetched:
            return None
        resource = self.resolver.fetched[key]
        entries = [] if resource is None else [{"fullUrl": f"{self.base}/{key}", "resource": copy.deepcopy(
            dict(resource)), "search": {"mode": "match"}}]
        return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}

    def _fill(self, template: str) -> Generator[Action, httpx.Response | None, str | None]:
        parts: list[str] = []
        position = 0
        for match in _TOKEN.finditer(template):
            parts.append(template[position:match.start()])
            in_path = "?" not in template[:match.start()]
            values = yield from self._token(match.group(1).strip())
            if not values:
                return None
            if in_path and (len(values) > 1 or not _is_path_value(values[0])):
                raise _KeyProblem(f"the token {{{{{match.group(1).strip()}}}}} does not give the single id a read "
                                  f"needs")
            parts.append(",".join(quote(value, safe="/:@") for value in values))
            position = match.end()
        parts.append(template[position:])
        return "".join(parts)

    def _token(self, source: str) -> Generator[Action, httpx.Response | None, list[str]]:
        if source in USER_TOKENS:
            user = self.user.get(source)
            return [user] if user else []
        try:
            expression = _compiled(source)
        except Exception as exc:  # the fhirpathpy parser raises bare exceptions
            raise _KeyProblem(f"the token {{{{{source}}}}} is not valid FHIRPath ({type(exc).__name__})") from None
        env = {name: self.env.get(name) for name in self.dependencies_of(source)}
        result = yield from self.resolver.evaluate(expression, self.root, env, source)
        return _strings(result, source)

    def dependencies_of(self, source: str) -> set[str]:
        return {name for name in _variables(source) if name in self.templates}

    def _send(self, url: str) -> Generator[Action, httpx.Response | None, httpx.Response]:
        try:
            return (yield from call(_request(url, self.timeout)))
        except httpx.TransportError as exc:
            raise _KeyProblem(f"the query could not reach the EHR ({type(exc).__name__})") from None

    @staticmethod
    def _read_answer(response: httpx.Response, kind: str, rid: str) -> Any:
        if response.status_code in (404, 410):
            return None
        body = _json(response) if response.status_code == 200 else None
        if not isinstance(body, Mapping) or body.get("resourceType") != kind:
            raise _KeyProblem(_failure(response, f"a {kind}"))
        if body.get("id") != rid:
            raise _KeyProblem(f"the EHR answered the read with another {kind} than the one asked for")
        return body

    def _search_answer(self, response: httpx.Response) -> Generator[Action, httpx.Response | None, Any]:
        bundle = _json(response) if response.status_code == 200 else None
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise _KeyProblem(_failure(response, "a searchset Bundle"))
        pages = 1
        page: Any = bundle
        while pages < MAX_PAGES:
            following = _next_url(page, self.base)
            if following is None:
                break
            page_response = yield from self._send(following)
            page = _json(page_response) if page_response.status_code == 200 else None
            if not isinstance(page, Mapping) or page.get("resourceType") != "Bundle":
                raise _KeyProblem(_failure(page_response, "the next page of a searchset Bundle"))
            bundle.setdefault("entry", []).extend(page.get("entry") or [])
            pages += 1
        if pages > 1 and _next_url(page, self.base) is None and isinstance(bundle.get("link"), list):
            bundle["link"] = [link for link in bundle["link"] if not (isinstance(link, Mapping)
                                                                      and link.get("relation") == "next")]
        return bundle


# --- helpers -----------------------------------------------------------------------------------------------


def _variables(source: str) -> set[str]:
    """The ``%names`` a template or token uses (string literals are ignored)."""
    text = _STRING.sub("''", source)
    return {plain or quoted for plain, quoted in _VARIABLE.findall(text)}


def _is_path_value(value: str) -> bool:
    return bool(_PATH_VALUE.match(value)) and value.rsplit("/", 1)[-1] not in (".", "..")


def _user_tokens(user_id: str | None) -> dict[str, str]:
    target = reference_target(user_id) if user_id else None
    if target is None:
        return {}
    return {token: target[1] for token, kind in USER_TOKENS.items() if kind == target[0]}


def _strings(result: list[Any], source: str) -> list[str]:
    """FHIRPath output as de-duplicated strings, in order; a complex value is an error."""
    values: list[str] = []
    for item in result:
        data = item.data if isinstance(item, ResourceNode) else item
        if isinstance(data, bool):
            text = "true" if data else "false"
        elif isinstance(data, str | int | Decimal | float):
            text = str(data)
        elif data is not None and not isinstance(data, Mapping | list):
            text = str(data)  # FHIRPath dates and times
        else:
            raise _KeyProblem(f"the token {{{{{source}}}}} gives a complex value, not an id or a code")
        if text and text not in values:
            values.append(text)
    return values


def _request(url: str, timeout: float | None) -> httpx.Request:
    extensions = {"timeout": httpx.Timeout(timeout).as_dict()} if timeout is not None else None
    return httpx.Request("GET", url, headers=_ACCEPT, extensions=extensions)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _failure(response: httpx.Response, wanted: str) -> str:
    if response.status_code != 200:
        return f"the query failed: HTTP {response.status_code}"
    return f"the EHR did not answer with {wanted}"


def _has_next(bundle: Mapping[str, Any]) -> bool:
    links = bundle.get("link")
    return any(isinstance(link, Mapping) and link.get("relation") == "next" for link in
               (links if isinstance(links, list) else []))


def _next_url(bundle: Any, base: str) -> str | None:
    """The ``next`` page on the same server (our token is never sent elsewhere), or None."""
    links = bundle.get("link") if isinstance(bundle, Mapping) else None
    for link in links if isinstance(links, list) else []:
        if isinstance(link, Mapping) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            url: str = link["url"]
            return url if url.startswith(base + "/") or url.startswith(base + "?") else None
    return None


__all__ = ["DEFAULT_TIMEOUT", "PrefetchResult", "aprefetch", "prefetch", "prefetch_flow", "primary_coverage"]

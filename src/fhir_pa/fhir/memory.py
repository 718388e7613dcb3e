"""An in-memory FHIR R4 store served as an httpx transport, so EHR-side code runs unchanged without a server.

The prefetch engine only ever holds an ``httpx.Client``/``AsyncClient`` and a base URL; pointing the client at
:meth:`MemoryFhirServer.transport` (instead of the network) lets tests and demos use a chart from a Bundle, a list
of resources or a folder of JSON files. It answers ``GET [base]/Type/id`` and ``GET [base]/Type?params`` (see
:mod:`fhir_pa.fhir.search`); everything else is an OperationOutcome error, never a silent success.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx

from fhir_pa.errors import InputError
from fhir_pa.fhir.search import SearchError, operation_outcome, search_bundle

FHIR_JSON = "application/fhir+json"
DEFAULT_BASE = "http://ehr.local/fhir"
_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

#: Decides whether a bearer token (None when the request had none) may read the store.
TokenCheck = Callable[[str | None], bool]


class MemoryFhirServer:
    """A FHIR R4 store in memory that answers reads and searches through :meth:`transport`.

    ``bearer`` switches on a token check: a string is the one accepted token, a callable decides per token.
    ``requests`` records every request that reached the transport (for tests: "was this query ever sent?");
    ``record_requests=False`` turns that off for a long-running server, where the list would only grow.
    """

    def __init__(self, resources: Iterable[Mapping[str, Any]] = (), *, base_url: str = DEFAULT_BASE,
                 bearer: str | TokenCheck | None = None, record_requests: bool = True) -> None:
        self.base_url = base_url.rstrip("/")
        self._base_path = httpx.URL(self.base_url).path.rstrip("/")
        self._resources: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._check: TokenCheck | None = (lambda token: token == bearer) if isinstance(bearer, str) else bearer
        self.requests: list[httpx.Request] = []
        self._record = record_requests
        for index, resource in enumerate(resources):
            self.add(resource, path=f"resources[{index}]")

    # --- loading -------------------------------------------------------------------------------------------

    @classmethod
    def from_bundle(cls, bundle: Mapping[str, Any], **options: Any) -> MemoryFhirServer:
        """A store holding every ``entry.resource`` of ``bundle`` (nested Bundles are stored as they are)."""
        server = cls(**options)
        server.add_bundle(bundle)
        return server

    @classmethod
    def from_folder(cls, folder: str | Path, **options: Any) -> MemoryFhirServer:
        """A store holding every resource of the ``*.json`` files in ``folder`` (a Bundle file adds its entries)."""
        server = cls(**options)
        root = Path(folder)
        if not root.is_dir():
            raise InputError("not a folder of FHIR JSON files", path=str(root))
        for file in sorted(root.glob("*.json")):
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InputError(f"cannot read FHIR JSON ({type(exc).__name__})", path=str(file)) from exc
            if isinstance(data, Mapping) and data.get("resourceType") == "Bundle":
                server.add_bundle(data, path=str(file))
            else:
                server.add(data, path=str(file))
        return server

    def add_bundle(self, bundle: Mapping[str, Any], *, path: str = "bundle") -> None:
        """Store each ``entry.resource`` of ``bundle``."""
        if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
            raise InputError("expected a FHIR Bundle", path=path)
        entries = bundle.get("entry") or []
        if not isinstance(entries, list):
            raise InputError("Bundle.entry must be a list", path=f"{path}:Bundle.entry")
        for index, entry in enumerate(entries):
            resource = entry.get("resource") if isinstance(entry, Mapping) else None
            if resource is not None:
                self.add(resource, path=f"{path}:Bundle.entry[{index}].resource")

    def add(self, resource: Any, *, path: str = "resource") -> None:
        """Store (or replace) one resource; it needs a ``resourceType`` and a valid ``id``."""
        if not isinstance(resource, Mapping):
            raise InputError("expected a FHIR resource (a JSON object)", path=path)
        kind, rid = resource.get("resourceType"), resource.get("id")
        if not isinstance(kind, str) or not _TYPE.match(kind):
            raise InputError("resource has no valid resourceType", path=path)
        if not isinstance(rid, str) or not _ID.match(rid):
            raise InputError("resource has no valid id", path=f"{path}.id")
        with self._lock:
            self._resources[(kind, rid)] = copy.deepcopy(dict(resource))

    def get(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """A copy of the stored resource, or None."""
        with self._lock:
            found = self._resources.get((resource_type, resource_id))
        return copy.deepcopy(found) if found is not None else None

    def resources(self) -> list[dict[str, Any]]:
        """Copies of every stored resource, in insertion order."""
        with self._lock:
            return copy.deepcopy(list(self._resources.values()))

    def __len__(self) -> int:
        return len(self._resources)

    # --- serving -------------------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """An httpx transport answering from this store; works for ``httpx.Client`` and ``httpx.AsyncClient``."""
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (the MockTransport handler)."""
        if self._record:
            self.requests.append(request)
        if self._check is not None and not self._check(_bearer_token(request)):
            return _outcome(401, "login", "a valid bearer token is required",
                            headers={"WWW-Authenticate": 'Bearer realm="fhir"'})
        path = request.url.path
        if path != self._base_path and not path.startswith(self._base_path + "/"):
            return _outcome(404, "not-found", "no FHIR endpoint at this path")
        parts = [unquote(part) for part in path[len(self._base_path):].split("/") if part]
        if request.method != "GET":
            return _outcome(405, "not-supported", f"{request.method} is not supported by this store")
        if len(parts) == 1 and _TYPE.match(parts[0]):
            return self._search(parts[0], request)
        if len(parts) == 2 and _TYPE.match(parts[0]):
            return self._read(parts[0], parts[1])
        return _outcome(404, "not-found", "no such FHIR interaction")

    def _read(self, resource_type: str, resource_id: str) -> httpx.Response:
        found = self.get(resource_type, resource_id)
        if found is None:
            return _outcome(404, "not-found", f"no {resource_type} with that id")
        return _json(200, found)

    def _search(self, resource_type: str, request: httpx.Request) -> httpx.Response:
        params = list(request.url.params.multi_items())
        with self._lock:
            snapshot = list(self._resources.values())
        try:
            bundle = search_bundle(snapshot, resource_type, params, base_url=self.base_url)
        except SearchError as exc:
            return _outcome(400, "not-supported" if "not supported" in exc.message else "invalid", exc.message,
                            expression=exc.parameter)
        return _json(200, bundle)


def _bearer_token(request: httpx.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _json(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body, separators=(",", ":")).encode(),
                          headers={"Content-Type": FHIR_JSON, **(headers or {})})


def _outcome(status: int, code: str, diagnostics: str, *, expression: str | None = None,
             headers: Mapping[str, str] | None = None) -> httpx.Response:
    return _json(status, operation_outcome(code, diagnostics, expression=expression), headers)


__all__ = ["DEFAULT_BASE", "MemoryFhirServer", "TokenCheck"]

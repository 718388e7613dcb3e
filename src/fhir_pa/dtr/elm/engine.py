"""Evaluate compiled libraries for one patient: lazy, memoised defines; parameters; terminology; data.

Compiled libraries are cached process-wide by identifier, version and content hash (and those of their
includes), so a second package with the same libraries costs no compilation.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fhir_pa.errors import FhirPaError, InputError

from . import fhir
from .compile import Compiler
from .datetime import CqlDateTime
from .errors import ElmError
from .load import Sources
from .runtime import CompiledLibrary, Frame, content_hash
from .types import FhirNode, ValueSet

_CACHE: dict[tuple[str, str | None, str, tuple[str, ...]], CompiledLibrary] = {}
_IN_PROGRESS = object()


class PatientData:
    """The resources of one patient's Bundle, indexed by type for Retrieve."""

    def __init__(self, bundle: Mapping[str, Any]) -> None:
        self.by_type: dict[str, list[FhirNode]] = {}
        self.by_ref: dict[str, FhirNode] = {}
        for entry in bundle.get("entry") or []:
            res = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(res, dict) and res.get("resourceType"):
                node = fhir.resource(res)
                self.by_type.setdefault(node.type, []).append(node)
                if res.get("id"):
                    self.by_ref[f"{node.type}/{res['id']}"] = node
        patients = self.by_type.get("Patient", [])
        self.patient = patients[0] if patients else None

    @property
    def patient_id(self) -> str | None:
        return self.patient.json.get("id") if self.patient is not None else None

    def records(self, resource_type: str) -> list[FhirNode]:
        return self.by_type.get(resource_type, [])


@dataclass
class RunState:
    """Everything one evaluation (one patient, one ``now``) shares across libraries."""

    data: PatientData
    now: CqlDateTime
    valuesets: Mapping[str, ValueSet]
    #: Parameter values by library key (only main libraries receive caller-given values).
    arguments: Mapping[str, Mapping[str, Any]]
    memo: dict[tuple[str, str], Any] = field(default_factory=dict)
    params: dict[tuple[str, str], Any] = field(default_factory=dict)
    messages: list[tuple[str, str]] = field(default_factory=list)

    def define(self, lib: CompiledLibrary, name: str) -> Any:
        key = (lib.key, name)
        if key in self.memo:
            value = self.memo[key]
            if value is _IN_PROGRESS:
                raise ElmError("define refers to itself", library=lib.name, define=name)
            return value
        fn = lib.defines.get(name)
        if fn is None:
            raise ElmError("no such define", library=lib.name, define=name)
        self.memo[key] = _IN_PROGRESS
        try:
            value = fn(Frame(self, lib, {}))
        except ElmError as exc:
            del self.memo[key]
            if exc.define is None:
                detail = f"{exc.message}: {exc.path}" if exc.path and not exc.library and not exc.locator \
                    else exc.message
                raise ElmError(detail, library=exc.library or lib.name, define=name, locator=exc.locator) from exc
            raise
        except FhirPaError:
            del self.memo[key]
            raise
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, ZeroDivisionError,
                RecursionError, OverflowError) as exc:
            del self.memo[key]
            raise ElmError(f"evaluation failed ({exc.__class__.__name__})", library=lib.name, define=name,
                           locator=lib.define_locators.get(name)) from exc
        self.memo[key] = value
        return value

    def parameter(self, lib: CompiledLibrary, name: str) -> Any:
        key = (lib.key, name)
        if key in self.params:
            return self.params[key]
        given = self.arguments.get(lib.key, {})
        if name in given:
            value = given[name]
        else:
            default = lib.parameters.get(name)
            value = default(Frame(self, lib, {})) if default is not None else None
        self.params[key] = value
        return value

    def valueset(self, vs_id: str, version: str | None) -> ValueSet:
        vs = self.valuesets.get(vs_id)
        if vs is None:
            raise ElmError("value set is not in the package", path=vs_id)
        return vs


@dataclass(frozen=True)
class LibraryResult:
    """One main library's defines for one patient, in statement order."""

    key: str
    patient: str | None
    fhir_model: str
    parameters: list[str]
    results: dict[str, Any]
    error: ElmError | None = None


def fhir_model(version: str | None) -> str:
    return {"4.0.0": "400", "3.0.0": "300", "1.0.2": "102"}.get(version or "", "401")


def parse_now(text: str | None) -> CqlDateTime:
    """The evaluation ``now``: an ISO date-time (its offset is kept) or the current UTC time."""
    if text is None:
        t = _dt.datetime.now(_dt.UTC)
        return CqlDateTime(t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond // 1000, 0.0)
    value = CqlDateTime.parse(text)
    if value is None or value.hour is None:
        raise InputError("--now must be an ISO date-time such as 2024-04-07T12:00:00Z", path="--now")
    if value.millisecond is None:
        value = CqlDateTime(value.year, value.month, value.day, value.hour, value.minute or 0, value.second or 0, 0,
                            value.offset)
    return value


class ElmEngine:
    """Compiled libraries from one set of sources, ready to evaluate any number of patients."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.libraries: dict[str, CompiledLibrary] = {}
        self._elm_by_key = {self._key(e): e for e in sources.libraries}
        for elm in sources.libraries:
            self._compile(elm, ())

    @staticmethod
    def _key(elm: dict[str, Any]) -> str:
        ident = elm["library"]["identifier"]
        return f"{ident.get('id')}|{ident.get('version') or ''}"

    def _find(self, path: str, version: str | None, stack: tuple[str, ...]) -> dict[str, Any]:
        elm = self._elm_by_key.get(f"{path}|{version or ''}")
        if elm is None:
            same = [e for k, e in self._elm_by_key.items() if k.split("|", 1)[0] == path]
            if len(same) == 1 and version is None:
                elm = same[0]
        if elm is None:
            raise ElmError(f"included library {path} version {version or '(any)'} is not among the sources",
                           library=stack[-1] if stack else None)
        return elm

    def _compile(self, elm: dict[str, Any], stack: tuple[str, ...]) -> CompiledLibrary:
        key = self._key(elm)
        if key in self.libraries:
            return self.libraries[key]
        if key in stack:
            raise ElmError("libraries include each other in a cycle", library=key)
        includes: dict[str, CompiledLibrary] = {}
        for inc in (elm["library"].get("includes") or {}).get("def", []):
            target = self._find(inc["path"], inc.get("version"), (*stack, key))
            includes[inc.get("localIdentifier") or inc["path"]] = self._compile(target, (*stack, key))
        ident = elm["library"]["identifier"]
        cache_key = (str(ident.get("id")), ident.get("version"), content_hash(elm),
                     tuple(sorted(f"{a}={lib.key}#{lib.content_hash}" for a, lib in includes.items())))
        lib = _CACHE.get(cache_key)
        if lib is None:
            lib = Compiler(elm, includes).compile()
            _CACHE[cache_key] = lib
        self.libraries[key] = lib
        return lib

    def main_libraries(self) -> list[CompiledLibrary]:
        """Libraries no other library includes (FHIRHelpers excluded), by name — the reference runner's choice."""
        included = {p for lib in self.libraries.values() for p in lib.include_paths}
        mains = [lib for lib in self.libraries.values() if lib.name not in included and lib.name != "FHIRHelpers"]
        return sorted(mains, key=lambda lib: lib.name)

    def library(self, name: str) -> CompiledLibrary:
        for lib in self.libraries.values():
            if lib.name == name or lib.key == name:
                return lib
        raise InputError(f"library {name} is not among the sources", path=name)

    def evaluate(self, bundle: Mapping[str, Any], *, now: CqlDateTime | str | None = None,
                 parameters: Mapping[str, Any] | None = None,
                 libraries: Iterable[str] | None = None,
                 defines: Iterable[str] | None = None, keep_going: bool = False) -> list[LibraryResult]:
        """Every define of each main library for the patient in ``bundle``.

        ``parameters`` values may be FHIR resource dicts, ``"Type/id"`` references into the bundle, or CQL
        values; only parameters a library declares are passed to it.
        """
        data = PatientData(bundle)
        when = now if isinstance(now, CqlDateTime) else parse_now(now)
        args = {k: self._argument(data, k, v) for k, v in (parameters or {}).items()}
        targets = [self.library(n) for n in libraries] if libraries else self.main_libraries()
        wanted = set(defines) if defines else None
        declared = {lib.key: [p for p in args if p in lib.parameters] for lib in targets}
        # one run state for all main libraries: defines of shared includes are evaluated once per patient
        run = RunState(data, when, self.sources.valuesets,
                       {key: {p: args[p] for p in names} for key, names in declared.items()})
        out = []
        for lib in targets:
            try:
                results = {name: run.define(lib, name) for name in lib.define_order
                           if wanted is None or name in wanted or name == "Patient"}
            except ElmError as exc:
                if not keep_going:
                    raise
                out.append(LibraryResult(lib.key, data.patient_id, fhir_model(lib.fhir_version), declared[lib.key], {},
                                         exc))
                continue
            out.append(LibraryResult(lib.key, data.patient_id, fhir_model(lib.fhir_version), declared[lib.key],
                                     results))
        return out

    @staticmethod
    def _argument(data: PatientData, name: str, value: Any) -> Any:
        if isinstance(value, str) and "/" in value and value.split("/", 1)[0][:1].isupper():
            node = data.by_ref.get(value)
            if node is None:
                raise InputError(f"parameter {name}: {value} is not in the patient bundle", path=f"--param {name}")
            return node
        if isinstance(value, dict) and value.get("resourceType"):
            return fhir.resource(value)
        return value

"""What compiled ELM runs on: frames, compiled libraries, type tests, property access, the node registry.

Node compilers (``nodes_*.py``) register themselves here by ELM type name; :mod:`.compile` looks them up.
"""

from __future__ import annotations

import hashlib
import json as _json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import datetime as cdt
from . import fhir
from .types import Code, Concept, FhirNode, Interval, Quantity, Tuple, ValueSet

if TYPE_CHECKING:
    from .compile import Compiler
    from .engine import RunState

Fn = Callable[["Frame"], Any]

SYSTEM_NS = "{urn:hl7-org:elm-types:r1}"
FHIR_NS = "{http://hl7.org/fhir}"


class Frame:
    """Evaluation scope: run state (one patient), current library and bound names."""

    __slots__ = ("lib", "run", "vars")

    def __init__(self, run: RunState, lib: CompiledLibrary, vars: dict[str, Any]) -> None:
        self.run = run
        self.lib = lib
        self.vars = vars

    def child(self, **names: Any) -> Frame:
        v = dict(self.vars)
        v.update(names)
        return Frame(self.run, self.lib, v)


@dataclass
class FunctionDef:
    """One compiled function overload."""

    name: str
    params: list[tuple[str, dict[str, Any] | None]]
    body: Fn | None
    lib: CompiledLibrary
    external: bool = False


@dataclass
class CompiledLibrary:
    """A library compiled to closures, reusable across patients."""

    name: str
    version: str | None
    fhir_version: str | None
    content_hash: str
    defines: dict[str, Fn] = field(default_factory=dict)
    define_order: list[str] = field(default_factory=list)
    define_locators: dict[str, str | None] = field(default_factory=dict)
    functions: dict[str, list[FunctionDef]] = field(default_factory=dict)
    includes: dict[str, CompiledLibrary] = field(default_factory=dict)
    include_paths: list[str] = field(default_factory=list)
    codesystems: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    codes: dict[str, Code] = field(default_factory=dict)
    concepts: dict[str, Concept] = field(default_factory=dict)
    valuesets: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    parameters: dict[str, Fn | None] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.name}|{self.version or ''}"


def content_hash(elm: dict[str, Any]) -> str:
    return hashlib.sha256(_json.dumps(elm, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------ type tests


def type_name(qname: str) -> tuple[str, str]:
    """``{ns}Name`` → (``'system'|'fhir'``, ``Name``)."""
    if qname.startswith(SYSTEM_NS):
        return "system", qname[len(SYSTEM_NS):]
    if qname.startswith(FHIR_NS):
        return "fhir", qname[len(FHIR_NS):]
    if qname.startswith("System."):
        return "system", qname[7:]
    if qname.startswith("FHIR."):
        return "fhir", qname[5:]
    return "fhir", qname


_SYSTEM_TYPES: dict[str, Callable[[Any], bool]] = {
    "Any": lambda v: True,
    "Boolean": lambda v: isinstance(v, bool),
    "Integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "Decimal": lambda v: isinstance(v, float),
    "String": lambda v: isinstance(v, str),
    "Date": lambda v: isinstance(v, cdt.CqlDate),
    "DateTime": lambda v: isinstance(v, cdt.CqlDateTime),
    "Time": lambda v: isinstance(v, cdt.CqlTime),
    "Quantity": lambda v: isinstance(v, Quantity),
    "Code": lambda v: isinstance(v, Code),
    "Concept": lambda v: isinstance(v, Concept),
}


def matches_named(value: Any, qname: str) -> bool:
    ns, name = type_name(qname)
    if ns == "system":
        test = _SYSTEM_TYPES.get(name)
        return bool(test(value)) if test else False
    if isinstance(value, str) and name in ("id", "string", "uri"):
        return True  # FHIR 4.0.1 models ids/urls as System.String; FHIR 4.0.0 ELM passes them to FHIR overloads
    return isinstance(value, FhirNode) and fhir.is_subtype(value.type, name)


def as_fhir_primitive(value: Any, spec: dict[str, Any] | None) -> Any:
    """A plain value passed where a FHIR primitive is declared becomes that primitive (``id`` → FHIR.id)."""
    if spec is None or spec.get("type") != "NamedTypeSpecifier":
        return value
    ns, name = type_name(spec["name"])
    if ns == "fhir" and name in fhir.PRIMITIVES:
        return FhirNode(name, name, value)
    return value


def matches(value: Any, spec: dict[str, Any] | None) -> bool:
    """Whether a non-null value is of the type a TypeSpecifier names."""
    if spec is None:
        return True
    kind = spec.get("type")
    if kind == "NamedTypeSpecifier":
        return matches_named(value, spec["name"])
    if kind == "ListTypeSpecifier":
        return isinstance(value, list) and all(x is None or matches(x, spec.get("elementType")) for x in value)
    if kind == "IntervalTypeSpecifier":
        return isinstance(value, Interval)
    if kind == "ChoiceTypeSpecifier":
        return any(matches(value, c) for c in spec.get("choice") or [])
    if kind == "TupleTypeSpecifier":
        return isinstance(value, Tuple)
    return True


def spec_of(node: dict[str, Any], name_key: str, spec_key: str) -> dict[str, Any] | None:
    """A node's type as a TypeSpecifier, whether ELM gave a specifier (``asTypeSpecifier``) or a name (``asType``)."""
    if node.get(spec_key) is not None:
        spec: dict[str, Any] = node[spec_key]
        return spec
    if node.get(name_key) is not None:
        return {"type": "NamedTypeSpecifier", "name": node[name_key]}
    return None


# ------------------------------------------------------------------ property access


def get_property(obj: Any, path: str) -> Any:
    """``obj.path`` with the reference engine's rules (property of a list is null)."""
    if obj is None:
        return None
    if "." in path:
        for part in path.split("."):
            obj = get_property(obj, part)
            if obj is None:
                return None
        return obj
    if isinstance(obj, FhirNode):
        return fhir.child(obj, path)
    if isinstance(obj, Tuple):
        return obj.get(path)
    if isinstance(obj, Code):
        return getattr(obj, path, None) if path in ("code", "system", "version", "display") else None
    if isinstance(obj, Concept):
        return list(obj.codes) if path == "codes" else obj.display if path == "display" else None
    if isinstance(obj, Quantity):
        return obj.value if path == "value" else obj.unit if path == "unit" else None
    if isinstance(obj, Interval):
        return {"low": obj.low, "high": obj.high, "lowClosed": obj.low_closed,
                "highClosed": obj.high_closed}.get(path)
    if isinstance(obj, (cdt.CqlDate, cdt.CqlDateTime, cdt.CqlTime)):
        return getattr(obj, path, None)
    return None


# ------------------------------------------------------------------ terminology


def _codes_of(value: Any) -> list[tuple[str | None, str | None]]:
    """(system, code) pairs of a Code, Concept, FHIR Coding/CodeableConcept, or a list of them."""
    if value is None:
        return []
    if isinstance(value, list):
        return [c for v in value for c in _codes_of(v)]
    if isinstance(value, Code):
        return [(value.system, value.code)]
    if isinstance(value, Concept):
        return [(c.system, c.code) for c in value.codes]
    if isinstance(value, FhirNode):
        j = value.json
        if isinstance(j, dict):
            if "coding" in j:
                return [(c.get("system"), c.get("code")) for c in j.get("coding") or [] if isinstance(c, dict)]
            if "code" in j or "system" in j:
                return [(j.get("system"), j.get("code"))]
        elif isinstance(j, str):
            return [(None, j)]
    if isinstance(value, str):
        return [(None, value)]
    return []


def in_codes(value: Any, target: Any) -> bool | None:
    """Membership of a code-ish value in a ValueSet, Code list or Concept: system + code, version ignored."""
    if value is None:
        return None
    if target is None:
        return False
    pairs = _codes_of(value)
    wanted = target.codes if isinstance(target, ValueSet) else frozenset(_codes_of(target))
    if any(p in wanted for p in pairs if p[0] is not None):
        return True
    bare = {code for system, code in pairs if system is None}  # a plain string matches on the code alone
    return bool(bare) and any(code in bare for _, code in wanted)


# ------------------------------------------------------------------ node registry


Handler = Callable[["Compiler", dict[str, Any]], Fn]
HANDLERS: dict[str, Handler] = {}


def handles(*names: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for n in names:
            HANDLERS[n] = fn
        return fn
    return deco



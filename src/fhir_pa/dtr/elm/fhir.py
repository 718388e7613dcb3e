"""FHIR R4 navigation as the reference engine's FHIR wrapper does it: typed children, choice types, primitives.

Types come from the FHIR R4 model tables shipped with ``fhirpathpy`` (path → type, choice paths,
type parents), so ``Observation.value`` finds ``valueQuantity`` and ``Patient.birthDate.value`` is a
CQL Date. Backbone elements are typed ``Resource.Element`` (``Encounter.Participant``). Those tables have
no binding names, so required-binding ``code`` elements get their reference-model label (``AdministrativeGender``)
from ``data/r4_bound_codes.json``, derived from the R4 StructureDefinitions by ``tools/make_bindings.py``.
"""

from __future__ import annotations

import json as _json
from importlib.resources import files
from typing import Any

from fhirpathpy.models import models

from .datetime import CqlDate, CqlDateTime, CqlTime
from .types import FhirNode

_R4: dict[str, Any] = models["r4"]
PATH_TYPES: dict[str, str] = _R4["path2Type"]
CHOICES: dict[str, list[str]] = _R4["choiceTypePaths"]
ELSEWHERE: dict[str, str] = _R4["pathsDefinedElsewhere"]
TYPE_PARENTS: dict[str, str] = _R4["type2Parent"]


def _bound_codes() -> dict[str, dict[str, str]]:
    """FHIR version → element path → label of required-binding ``code`` elements (package data: wheel-safe)."""
    text = files("fhir_pa.dtr.elm").joinpath("data", "r4_bound_codes.json").read_text(encoding="utf-8")
    tables: dict[str, dict[str, str]] = _json.loads(text)["labels"]
    return tables


#: ``{"4.0.1": {"Patient.gender": "AdministrativeGender", ...}, "4.0.0": {...}}``; the two model infos differ.
BOUND_CODES: dict[str, dict[str, str]] = _bound_codes()
#: Runner model codes (``LibraryResult.fhir_model``) → the FHIR version of the model info they load.
MODEL_VERSIONS = {"400": "4.0.0", "401": "4.0.1"}


def type_label(node: FhirNode, model: str = "401") -> str:
    """The type name the reference engine prints for ``node`` under FHIR model ``model`` ("400"/"401").

    Only names differ: a required-binding ``code`` keeps ``type == "code"`` for all our semantics.
    """
    if node.element is None:
        return node.type
    return BOUND_CODES.get(MODEL_VERSIONS.get(model, ""), {}).get(node.element, node.type)


#: Primitive specialisations (FHIR R4 profiles of primitives).
PRIMITIVE_PARENTS = {"code": "string", "id": "string", "markdown": "string", "url": "uri", "canonical": "uri",
                     "oid": "uri", "uuid": "uri", "positiveInt": "integer", "unsignedInt": "integer"}
PRIMITIVES = frozenset({"boolean", "integer", "decimal", "string", "uri", "date", "dateTime", "instant", "time",
                        "base64Binary", "xhtml", *PRIMITIVE_PARENTS})
#: Default UTC offset (hours) for FHIR dateTimes written without one; the reference engine uses its host's.
DEFAULT_OFFSET = 0.0


def _choice_type(name: str) -> str:
    return name[0].lower() + name[1:] if name[0].lower() + name[1:] in PRIMITIVES else name


def resource(json: dict[str, Any]) -> FhirNode:
    t = str(json.get("resourceType"))
    return FhirNode(t, t, json)


def is_subtype(actual: str, wanted: str) -> bool:
    """Whether FHIR type ``actual`` is ``wanted`` or derives from it."""
    t: str | None = actual
    while t is not None:
        if t == wanted:
            return True
        t = PRIMITIVE_PARENTS.get(t) or TYPE_PARENTS.get(t)
    return wanted in ("Element", "Any") or (wanted == "Resource" and actual[:1].isupper() and "." not in actual
                                             and TYPE_PARENTS.get(actual) in ("DomainResource", "Resource"))


def primitive_value(node: FhirNode) -> Any:
    """The CQL value of a FHIR primitive (``.value``)."""
    raw, t = node.json, node.type
    if raw is None:
        return None
    if t in ("date",):
        return CqlDate.parse(str(raw))
    if t in ("dateTime", "instant"):
        return CqlDateTime.parse(str(raw), DEFAULT_OFFSET)
    if t == "time":
        return CqlTime.parse(str(raw))
    if t == "decimal":
        return float(raw)
    return raw


def _wrap(raw: Any, ext: Any, type_: str, path: str, element: str | None = None) -> FhirNode:
    if type_ == "Resource" and isinstance(raw, dict):
        return resource(raw)
    return FhirNode(type_, path, raw, ext, element)


def _many(raw: Any, ext: Any, type_: str, path: str, element: str | None = None) -> Any:
    if isinstance(raw, list) or isinstance(ext, list):
        values = raw if isinstance(raw, list) else [None] * len(ext)
        exts = ext if isinstance(ext, list) else [None] * len(values)
        return [_wrap(v, e, type_, path, element) for v, e in zip(values, exts, strict=False)
                if v is not None or e is not None]
    return _wrap(raw, ext, type_, path, element)


def child(node: FhirNode, name: str) -> Any:
    """``node.name``: a FhirNode, a list of them, a plain string for element ids/urls, or ``None``.

    Results are cached on the node (one patient's data is read many times by one evaluation); callers must
    treat returned lists as read-only.
    """
    cache = node._cache
    if cache is None:
        cache = node._cache = {}
    elif name in cache:
        return cache[name]
    value = cache[name] = _child(node, name)
    return value


def _child(node: FhirNode, name: str) -> Any:
    json = node.json
    if not isinstance(json, dict):
        if name == "value":
            return primitive_value(node)
        if isinstance(node.ext, dict):
            if name == "id":
                return node.ext.get("id")
            if name == "extension":
                return _many(node.ext.get("extension"), None, "Extension", "Extension")
        return None
    key = f"{node.path}.{name}"
    t = PATH_TYPES.get(key)
    if t is None:
        choices = CHOICES.get(key)
        if choices is not None:
            for c in choices:
                field = name + c[0].upper() + c[1:]
                if field in json or "_" + field in json:
                    ct = _choice_type(c)
                    return _many(json.get(field), json.get("_" + field), ct, ct)
            return None
        raw = json.get(name)
        if raw is None:
            return None
        target = ELSEWHERE.get(key, key)
        if target != key:  # e.g. Questionnaire.item.item is typed like Questionnaire.item
            parent_type = node.type.rsplit(".", 1)[0]
            return _many(raw, None, parent_type, target)
        seg = target.split(".")
        type_name = ".".join([seg[0]] + [s[0].upper() + s[1:] for s in seg[1:]])
        return _many(raw, None, type_name, target)
    raw, ext = json.get(name), json.get("_" + name)
    if raw is None and ext is None:
        return None
    if t == "System.String":
        if name == "id" and "resourceType" in json:  # a resource id is a FHIR.id element; element ids are strings
            return FhirNode("id", "id", raw, ext)
        return raw
    return _many(raw, ext, t, t, key if t == "code" else None)

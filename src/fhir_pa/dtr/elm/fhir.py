"""FHIR R4 navigation as the reference engine's FHIR wrapper does it: typed children, choice types, primitives.

Types come from the FHIR R4 model tables shipped with ``fhirpathpy`` (path → type, choice paths,
type parents), so ``Observation.value`` finds ``valueQuantity`` and ``Patient.birthDate.value`` is a
CQL Date. Backbone elements are typed ``Resource.Element`` (``Encounter.Participant``).
"""

from __future__ import annotations

from typing import Any

from fhirpathpy.models import models

from .datetime import CqlDate, CqlDateTime, CqlTime
from .types import FhirNode

_R4: dict[str, Any] = models["r4"]
PATH_TYPES: dict[str, str] = _R4["path2Type"]
CHOICES: dict[str, list[str]] = _R4["choiceTypePaths"]
ELSEWHERE: dict[str, str] = _R4["pathsDefinedElsewhere"]
TYPE_PARENTS: dict[str, str] = _R4["type2Parent"]

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


def _wrap(raw: Any, ext: Any, type_: str, path: str) -> FhirNode:
    if type_ == "Resource" and isinstance(raw, dict):
        return resource(raw)
    return FhirNode(type_, path, raw, ext)


def _many(raw: Any, ext: Any, type_: str, path: str) -> Any:
    if isinstance(raw, list) or isinstance(ext, list):
        values = raw if isinstance(raw, list) else [None] * len(ext)
        exts = ext if isinstance(ext, list) else [None] * len(values)
        return [_wrap(v, e, type_, path) for v, e in zip(values, exts, strict=False) if v is not None or e is not None]
    return _wrap(raw, ext, type_, path)


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
    return _many(raw, ext, t, t)

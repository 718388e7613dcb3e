"""CQL runtime values that are not plain Python: Code, Concept, Quantity, Interval, Tuple and FHIR nodes.

Plain values map directly: Boolean → ``bool``, Integer → ``int``, Decimal → ``float`` (as the reference
engine, which uses JavaScript numbers), String → ``str``, List → ``list``, null → ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Code fields in output order; a Code built from a CodeDef omits what the definition leaves out.
CODE_FIELDS = ("code", "system", "version", "display")


@dataclass(frozen=True, slots=True)
class Code:
    """A System.Code. ``omitted`` names fields that were never given (encoded as absent, not null)."""

    code: str | None
    system: str | None = None
    version: str | None = None
    display: str | None = None
    omitted: frozenset[str] = field(default=frozenset(), compare=False)


@dataclass(frozen=True, slots=True)
class Concept:
    """A System.Concept: codes that mean the same thing, and an optional display."""

    codes: tuple[Code, ...]
    display: str | None = None
    omitted: frozenset[str] = field(default=frozenset(), compare=False)


@dataclass(frozen=True, slots=True)
class Quantity:
    """A System.Quantity (value + UCUM unit; ``'1'`` is the unit of a pure number)."""

    value: float | int | None
    unit: str | None = "1"


@dataclass(frozen=True, slots=True)
class Interval:
    """A System.Interval over ordered points; a ``None`` boundary is unbounded when closed, unknown when open."""

    low: Any
    high: Any
    low_closed: bool = True
    high_closed: bool = True


class Tuple(dict[str, Any]):
    """A System.Tuple: named elements in declaration order."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class ValueSet:
    """A value set reference resolved against the loaded terminology: ``(system, code)`` pairs."""

    id: str
    version: str | None
    codes: frozenset[tuple[str | None, str | None]]


class FhirNode:
    """One FHIR resource or element, as the reference engine's FHIR wrapper sees it.

    ``type`` is the FHIR type name (``Observation``, ``HumanName``, ``dateTime``, ``Encounter.Participant``),
    ``path`` the model path used to type child elements, ``json`` the raw JSON (a dict, or the primitive
    value) and ``ext`` the primitive's ``_element`` companion (id/extension), if any. ``element`` is the defining
    element path of a ``code`` (``Patient.gender``), kept so output can name the type as the reference model
    does (``AdministrativeGender``, see ``fhir.type_label``); it never changes behaviour.
    """

    __slots__ = ("_cache", "element", "ext", "json", "path", "type")

    def __init__(self, type_: str, path: str, json: Any, ext: Any = None, element: str | None = None) -> None:
        self.type = type_
        self.path = path
        self.json = json
        self.ext = ext
        self.element = element
        self._cache: dict[str, Any] | None = None

    @property
    def is_primitive(self) -> bool:
        return not isinstance(self.json, dict)

    @property
    def is_resource(self) -> bool:
        return isinstance(self.json, dict) and "resourceType" in self.json

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, FhirNode):
            return NotImplemented
        return self.type == other.type and self.json == other.json and self.ext == other.ext

    def __hash__(self) -> int:
        return hash((self.type, self.json.get("id") if isinstance(self.json, dict) else str(self.json)))

    def __repr__(self) -> str:
        ident = self.json.get("id") if isinstance(self.json, dict) else self.json
        return f"FhirNode({self.type}, {ident!r})"

"""Read FHIR JSON from a payer without trusting its shape.

Real PAS payloads break strict models, so the decision is read from raw dicts. Every accessor here takes
the node, the key and the node's FHIRPath; a value of the wrong type becomes a warning naming that path and
the type found (never the value, which may be patient data) and is then ignored, or read the obvious way
(a number where text belongs, ``"2"`` for a positiveInt). Nothing here raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir_pa.fhir.document import kind
from fhir_pa.pas.decision_types import Coding, Period

Json = Mapping[str, Any]


class FieldReader:
    """Lenient accessors that collect warnings instead of raising."""

    def __init__(self) -> None:
        self._warnings: dict[str, None] = {}  # ordered, without repeats

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(self._warnings)

    def warn(self, message: str) -> None:
        self._warnings.setdefault(message, None)

    def wrong(self, path: str, value: Any, expected: str) -> None:
        self.warn(f"{path} is {kind(value)}, not {expected}; ignored")

    # -- structure --------------------------------------------------------------------------------

    def obj(self, node: Json, key: str, where: str) -> Json | None:
        value = node.get(key)
        if value is None or isinstance(value, Mapping):
            return value
        self.wrong(f"{where}.{key}", value, "an object")
        return None

    def objects(self, node: Json, key: str, where: str) -> list[tuple[str, Json]]:
        """The objects in the list ``node[key]``, each with its path; anything else is skipped."""
        value = node.get(key)
        if value is None:
            return []
        if isinstance(value, Mapping):
            self.warn(f"{where}.{key} is a single object, not a list; read as a list of one")
            return [(f"{where}.{key}[0]", value)]
        if not isinstance(value, list):
            self.wrong(f"{where}.{key}", value, "a list")
            return []
        found: list[tuple[str, Json]] = []
        for index, element in enumerate(value):
            path = f"{where}.{key}[{index}]"
            if isinstance(element, Mapping):
                found.append((path, element))
            else:
                self.wrong(path, element, "an object")
        return found

    def extensions(self, node: Json, where: str, *urls: str) -> list[tuple[str, Json]]:
        """``node.extension`` entries whose url is one of ``urls``, each with its path."""
        return [(path, ext) for path, ext in self.objects(node, "extension", where) if ext.get("url") in urls]

    # -- primitives -------------------------------------------------------------------------------

    def string(self, node: Json, key: str, where: str) -> str | None:
        value = node.get(key)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.warn(f"{where}.{key} is a number, not a string; read as text")
            return str(value)
        self.wrong(f"{where}.{key}", value, "a string")
        return None

    def integer(self, node: Json, key: str, where: str) -> int | None:
        value = node.get(key)
        return None if value is None else self.as_int(value, f"{where}.{key}")

    def as_int(self, value: Any, path: str) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().isdigit():
            self.warn(f"{path} is a string, not a number; read as a number")
            return int(value.strip())
        self.wrong(path, value, "an integer")
        return None

    def integers(self, node: Json, key: str, where: str) -> tuple[int, ...]:
        value = node.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.warn(f"{where}.{key} is a single value, not a list; read as a list of one")
            value = [value]
        numbers = (self.as_int(element, f"{where}.{key}[{index}]") for index, element in enumerate(value))
        return tuple(number for number in numbers if number is not None)

    def number(self, node: Json, key: str, where: str) -> float | None:
        value = node.get(key)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                parsed = float(value)
            except ValueError:
                pass
            else:
                self.warn(f"{where}.{key} is a string, not a number; read as a number")
                return parsed
        self.wrong(f"{where}.{key}", value, "a number")
        return None

    # -- FHIR datatypes ---------------------------------------------------------------------------

    def codings(self, concept: Json, where: str) -> tuple[Coding, ...]:
        """The codings of a CodeableConcept."""
        return tuple(Coding(self.string(c, "system", path), self.string(c, "code", path),
                            self.string(c, "display", path))
                     for path, c in self.objects(concept, "coding", where))

    def concept(self, node: Json, key: str, where: str) -> tuple[Coding, ...]:
        concept = self.obj(node, key, where)
        return () if concept is None else self.codings(concept, f"{where}.{key}")

    def concept_codes(self, node: Json, key: str, where: str) -> tuple[str, ...]:
        """The codes of the CodeableConcepts listed at ``node[key]``."""
        return tuple(c.code for path, concept in self.objects(node, key, where)
                     for c in self.codings(concept, path) if c.code)

    def primary(self, concept: Json, where: str) -> Coding | None:
        """The first coding with a code; else the concept's text as a code-less coding."""
        codings = self.codings(concept, where)
        chosen = next((c for c in codings if c.code), None)
        if chosen is not None:
            return chosen
        text = self.string(concept, "text", where)
        return Coding(None, None, text) if text else None

    def period(self, node: Json, key: str, where: str) -> Period | None:
        value = self.obj(node, key, where)
        if value is None:
            return None
        path = f"{where}.{key}"
        return Period(self.string(value, "start", path), self.string(value, "end", path))

    def identifier(self, value: Any, path: str) -> str | None:
        """An Identifier as ``system|value`` (or just the value)."""
        if not isinstance(value, Mapping):
            if value is not None:
                self.wrong(path, value, "an object")
            return None
        system = self.string(value, "system", path)
        text = self.string(value, "value", path)
        if not text:
            return None
        return f"{system}|{text}" if system else text

    # -- extension values -------------------------------------------------------------------------

    def ext_text(self, node: Json, where: str, url: str) -> str | None:
        """The first text-like value (string, code, id, Identifier.value) of the extensions at ``url``."""
        for path, ext in self.extensions(node, where, url):
            for key in ("valueString", "valueCode", "valueId"):
                if key in ext:
                    text = self.string(ext, key, path)
                    if text:
                        return text
            if "valueIdentifier" in ext:
                identifier = self.obj(ext, "valueIdentifier", path)
                text = self.string(identifier, "value", f"{path}.valueIdentifier") if identifier else None
                if text:
                    return text
        return None

    def ext_period(self, node: Json, where: str, url: str) -> Period | None:
        for path, ext in self.extensions(node, where, url):
            period = self.period(ext, "valuePeriod", path)
            if period is not None:
                return period
        return None

    def ext_date(self, node: Json, where: str, url: str) -> str | None:
        for path, ext in self.extensions(node, where, url):
            for key in ("valueDate", "valueDateTime", "valueString"):
                text = self.string(ext, key, path) if key in ext else None
                if text:
                    return text
        return None

    def ext_code(self, node: Json, where: str, url: str) -> str | None:
        """The code of the first extension at ``url`` (valueCodeableConcept, valueCoding or valueCode)."""
        for path, ext in self.extensions(node, where, url):
            if "valueCodeableConcept" in ext:
                concept = self.obj(ext, "valueCodeableConcept", path)
                coding = self.primary(concept, f"{path}.valueCodeableConcept") if concept else None
                if coding and coding.code:
                    return coding.code
            if "valueCoding" in ext:
                coding_node = self.obj(ext, "valueCoding", path)
                code = self.string(coding_node, "code", f"{path}.valueCoding") if coding_node else None
                if code:
                    return code
            text = self.string(ext, "valueCode", path) if "valueCode" in ext else None
            if text:
                return text
        return None

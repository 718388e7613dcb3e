"""Results → the reference runner's JSON encoding, so our output diffs directly against the oracle.

FHIR resources → ``{"@fhir": Type, "id"}``; other FHIR elements → ``{"@fhir": Type, "value": json}``;
CQL types → ``{"@type": ..., ...}``; tuples → objects; lists → arrays. Decimals print like JavaScript
numbers (``87`` not ``87.0``). FHIR type names follow the library's model info (``model``: "400"/"401"),
which names required-binding codes after their binding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .datetime import CqlDate, CqlDateTime, CqlTime, Uncertainty
from .engine import LibraryResult
from .fhir import type_label
from .types import CODE_FIELDS, Code, Concept, FhirNode, Interval, Quantity, Tuple, ValueSet


def _number(v: float) -> float | int:
    if math.isfinite(v) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    return v


def encode(value: Any, *, full: bool = False, model: str = "401") -> Any:
    """One CQL value in the oracle's encoding, FHIR types named as FHIR model ``model`` names them."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, list):
        return [encode(v, full=full, model=model) for v in value]
    if isinstance(value, FhirNode):
        t = value.type
        if value.is_primitive:  # the wrapper's view of a primitive: {"value": ..., plus the _element's id/extension}
            body: dict[str, Any] = {} if value.json is None else {"value": value.json}
            if isinstance(value.ext, dict):
                body.update(value.ext)
            return {"@fhir": type_label(value, model), "value": body}
        if full or not value.is_resource:
            return {"@fhir": t, "value": value.json}
        return {"@fhir": t, "id": value.json.get("id")}
    if isinstance(value, CqlDateTime):
        return {"@type": "DateTime", "value": str(value)}
    if isinstance(value, CqlDate):
        return {"@type": "Date", "value": str(value)}
    if isinstance(value, CqlTime):
        return {"@type": "Time", "value": str(value)}
    if isinstance(value, Quantity):
        return {"@type": "Quantity", "value": encode(value.value), "unit": value.unit}
    if isinstance(value, Code):
        return {"@type": "Code", **{k: getattr(value, k) for k in CODE_FIELDS if k not in value.omitted}}
    if isinstance(value, Concept):
        out: dict[str, Any] = {"@type": "Concept", "codes": encode(list(value.codes))}
        if "display" not in value.omitted:
            out["display"] = value.display
        return out
    if isinstance(value, Interval):
        return {"@type": "Interval", "low": encode(value.low, full=full, model=model),
                "high": encode(value.high, full=full, model=model),
                "lowClosed": value.low_closed, "highClosed": value.high_closed}
    if isinstance(value, ValueSet):
        return {"@type": "ValueSet", "oid": value.id, "version": value.version}
    if isinstance(value, Tuple):
        return {k: encode(v, full=full, model=model) for k, v in value.items()}
    if isinstance(value, Uncertainty):
        return {"low": value.low, "high": value.high}
    return str(value)


def report(execution: CqlDateTime, results: Sequence[LibraryResult], *, full: bool = False) -> dict[str, Any]:
    """The runner's top-level document: ``{"executionDateTime", "libraries": {key: {...}}}``."""
    return {
        "executionDateTime": str(execution),
        "libraries": {
            r.key: {"error": r.error.one_line()} if r.error is not None else
            {"patient": r.patient, "fhirModel": r.fhir_model, "parameters": list(r.parameters),
             "results": {k: encode(v, full=full, model=r.fhir_model) for k, v in r.results.items()}}
            for r in results
        },
    }

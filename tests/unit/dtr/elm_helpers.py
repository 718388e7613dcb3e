"""Tiny ELM builders for the engine's unit tests (hand-written JSON, as cql-to-elm would emit it)."""

from __future__ import annotations

from typing import Any

from fhir_pa.dtr.elm import ElmEngine, load_sources

S = "{urn:hl7-org:elm-types:r1}"
FH = "{http://hl7.org/fhir}"
NOW = "2024-04-07T12:00:00.000Z"


def lit(value: Any, t: str | None = None) -> dict[str, Any]:
    if t is None:
        t = "Boolean" if isinstance(value, bool) else "Integer" if isinstance(value, int) else \
            "Decimal" if isinstance(value, float) else "String"
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return {"type": "Literal", "valueType": S + t, "value": text}


def null() -> dict[str, Any]:
    return {"type": "Null"}


def op(kind: str, *operands: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": kind, "operand": list(operands) if len(operands) != 1 or kind in _LIST_OPS else operands[0],
            **extra}


_LIST_OPS = {"And", "Or", "Equal", "Equivalent", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "In",
             "Overlaps", "Add", "Subtract", "Union", "Except", "Coalesce", "Concatenate", "ConvertQuantity",
             "DurationBetween", "DifferenceBetween", "Indexer", "Includes", "Before", "After", "EndsWith"}


def dt(text: str) -> dict[str, Any]:
    return {"type": "ToDateTime", "operand": lit(text)}


def qty(value: float, unit: str) -> dict[str, Any]:
    return {"type": "Quantity", "value": value, "unit": unit}


def interval(low: dict[str, Any], high: dict[str, Any], lc: bool = True, hc: bool = True) -> dict[str, Any]:
    return {"type": "Interval", "low": low, "high": high, "lowClosed": lc, "highClosed": hc}


def lst(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "List", "element": list(elements)}


def library(defs: dict[str, dict[str, Any]], *, name: str = "T", version: str = "1.0.0",
            functions: list[dict[str, Any]] | None = None, **sections: Any) -> dict[str, Any]:
    statements = [{"name": k, "context": "Patient", "expression": v} for k, v in defs.items()]
    statements += functions or []
    body: dict[str, Any] = {
        "identifier": {"id": name, "version": version},
        "usings": {"def": [{"localIdentifier": "FHIR", "uri": "http://hl7.org/fhir", "version": "4.0.1"}]},
        "statements": {"def": statements},
    }
    body.update(sections)
    return {"library": body}


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in ({"resourceType": "Patient", "id": "p"}, *resources)]}


def run(defs: dict[str, dict[str, Any]], *resources: dict[str, Any], now: str = NOW,
        args: dict[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    """Evaluate a one-library ELM (``sections``: parameters, codes, ...) and return its results by define name."""
    engine = ElmEngine(load_sources(library(defs, **sections)))
    return engine.evaluate(bundle(*resources), now=now, parameters=args)[0].results

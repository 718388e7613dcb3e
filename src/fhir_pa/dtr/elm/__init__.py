"""A native ELM (compiled CQL) engine for DTR prepopulation, matching cql-execution + cql-exec-fhir results.

    sources = load_sources("package.json")            # ELM + ValueSets from files, dirs, Libraries, packages
    engine = ElmEngine(sources)                        # compiles each library once (cached process-wide)
    results = engine.evaluate(bundle, now="2024-04-07T12:00:00Z",
                              parameters={"device_request": "DeviceRequest/dr1"})
    report(parse_now("2024-04-07T12:00:00Z"), results)  # the oracle's JSON shape
"""

from __future__ import annotations

from .datetime import CqlDate, CqlDateTime, CqlTime, Uncertainty
from .encode import encode, report
from .engine import ElmEngine, LibraryResult, PatientData, parse_now
from .errors import ElmError
from .load import Sources, load_sources, read_bundle, valueset_from_fhir
from .types import Code, Concept, FhirNode, Interval, Quantity, Tuple, ValueSet

__all__ = [
    "Code",
    "Concept",
    "CqlDate",
    "CqlDateTime",
    "CqlTime",
    "ElmEngine",
    "ElmError",
    "FhirNode",
    "Interval",
    "LibraryResult",
    "PatientData",
    "Quantity",
    "Sources",
    "Tuple",
    "Uncertainty",
    "ValueSet",
    "encode",
    "load_sources",
    "parse_now",
    "read_bundle",
    "report",
    "valueset_from_fhir",
]

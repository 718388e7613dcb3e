"""The DTR ``information-origin`` extension on QuestionnaireResponse answers.

Every pre-populated answer says where it came from (spec-65): ``auto-client`` (EHR data through CQL/FHIRPath),
``auto-server`` (prefilled by the payer), ``override`` (a person changed an auto answer) or ``manual``.
Invariant dtrx-1: an author is present iff the source is not automatic. DTR 2.0.1 (the Inferno test kit) knows
only ``auto``; the ``version="2.0.1"`` switch writes that code instead of ``auto-client``/``auto-server``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from fhir_pa.errors import InputError

ORIGIN_URL = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin"

DtrVersion = Literal["2.2", "2.0.1"]
Source = Literal["auto-client", "auto-server", "override", "manual"]
AUTO: frozenset[str] = frozenset({"auto-client", "auto-server"})
_SOURCES: frozenset[str] = frozenset({"auto-client", "auto-server", "override", "manual"})


def origin_parts(code: str, author: str | None = None) -> dict[str, Any]:
    """The extension as written, for any code (``auto`` included) and an optional author; no checks."""
    parts: list[dict[str, Any]] = [{"url": "source", "valueCode": code}]
    if author:
        parts.append({"url": "author", "extension": [{"url": "practitioner", "valueReference": {"reference": author}}]})
    return {"url": ORIGIN_URL, "extension": parts}


def origin_extension(source: Source, *, author: str | None = None, version: DtrVersion = "2.2") -> dict[str, Any]:
    """The extension for one answer; ``author`` is a reference string such as ``Practitioner/p1``."""
    if source not in _SOURCES:
        raise InputError(f"unknown information-origin source {source!r}", path="information-origin.source")
    if source not in AUTO and not author:
        raise InputError(f"information-origin source {source} needs an author (dtrx-1)",
                         path="information-origin.author")
    code = "auto" if version == "2.0.1" and source in AUTO else source
    return origin_parts(code, author if source not in AUTO else None)


def read_source(answer: Mapping[str, Any]) -> Source | None:
    """The answer's origin source (2.0.1 ``auto`` reads as ``auto-client``), or None when absent/unknown."""
    for ext in answer.get("extension") or []:
        if isinstance(ext, Mapping) and ext.get("url") == ORIGIN_URL:
            for part in ext.get("extension") or []:
                if isinstance(part, Mapping) and part.get("url") == "source":
                    code = part.get("valueCode")
                    if code == "auto":
                        return "auto-client"
                    if code in _SOURCES:
                        return code  # type: ignore[no-any-return]
    return None


def read_author(answer: Mapping[str, Any]) -> str | None:
    """The practitioner reference in the answer's origin author, if any."""
    for ext in answer.get("extension") or []:
        if isinstance(ext, Mapping) and ext.get("url") == ORIGIN_URL:
            for part in ext.get("extension") or []:
                if isinstance(part, Mapping) and part.get("url") == "author":
                    for sub in part.get("extension") or []:
                        ref = (sub.get("valueReference") or {}).get("reference") if isinstance(sub, Mapping) else None
                        if isinstance(ref, str):
                            return ref
    return None


def with_origin(answer: Mapping[str, Any], source: Source, *, author: str | None = None,
                version: DtrVersion = "2.2") -> dict[str, Any]:
    """A copy of ``answer`` whose (only) information-origin extension is the given one."""
    out = dict(answer)
    others = [e for e in answer.get("extension") or [] if not (isinstance(e, Mapping) and e.get("url") == ORIGIN_URL)]
    out["extension"] = [*others, origin_extension(source, author=author, version=version)]
    return out

"""Find ELM libraries and value sets in files, directories, FHIR Libraries and questionnaire packages.

A package may be a Bundle or a Parameters (``packagebundle``/``PackageBundle``/``return`` parts), and
Libraries carry ELM as base64 ``application/elm+json``. ValueSets become (system, code) sets from
``expansion.contains`` or, when unexpanded, every ``compose.include.concept`` (filters are not expanded).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir_pa.errors import InputError

from .types import ValueSet


@dataclass
class Sources:
    """What was found: ELM libraries (in discovery order) and value sets by URL, id and ``urn:oid:``."""

    libraries: list[dict[str, Any]] = field(default_factory=list)
    valuesets: dict[str, ValueSet] = field(default_factory=dict)

    def add_library(self, elm: dict[str, Any]) -> None:
        ident = elm["library"]["identifier"]
        key = (ident.get("id"), ident.get("version"))
        self.libraries = [e for e in self.libraries
                          if (e["library"]["identifier"].get("id"), e["library"]["identifier"].get("version")) != key]
        self.libraries.append(elm)


def _flatten(contains: list[dict[str, Any]] | None, out: set[tuple[str | None, str | None]]) -> None:
    for c in contains or []:
        if c.get("code") is not None:
            out.add((c.get("system"), c.get("code")))
        _flatten(c.get("contains"), out)


def valueset_from_fhir(vs: dict[str, Any]) -> ValueSet:
    codes: set[tuple[str | None, str | None]] = set()
    _flatten((vs.get("expansion") or {}).get("contains"), codes)
    if not codes:
        for inc in (vs.get("compose") or {}).get("include") or []:
            for concept in inc.get("concept") or []:
                codes.add((inc.get("system"), concept.get("code")))
    return ValueSet(str(vs.get("url") or vs.get("id")), vs.get("version"), frozenset(codes))


def _is_elm(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("library"), dict) and "identifier" in obj["library"]


def _library_elm(lib: dict[str, Any], where: str) -> list[dict[str, Any]]:
    out = []
    for i, content in enumerate(lib.get("content") or []):
        if content.get("contentType") == "application/elm+json" and content.get("data"):
            try:
                elm = json.loads(base64.b64decode(content["data"]).decode("utf-8"))
            except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InputError(f"Library content is not base64 ELM JSON ({exc.__class__.__name__})",
                                 path=f"{where}.content[{i}]") from exc
            if not _is_elm(elm):
                raise InputError("Library content is not an ELM library", path=f"{where}.content[{i}]")
            out.append(elm)
    return out


def harvest(obj: Any, sources: Sources, where: str = "$") -> None:
    """Collect ELM and ValueSets from any JSON: ELM itself, a Library, a ValueSet, or a container of them."""
    if _is_elm(obj):
        sources.add_library(obj)
        return
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            harvest(item, sources, f"{where}[{i}]")
        return
    if not isinstance(obj, dict):
        return
    rtype = obj.get("resourceType")
    if rtype == "ValueSet":
        vs = valueset_from_fhir(obj)
        for key in {obj.get("url"), obj.get("id"), f"urn:oid:{obj['id']}" if obj.get("id") else None} - {None}:
            sources.valuesets[str(key)] = vs
        return
    if rtype == "Library":
        for elm in _library_elm(obj, where):
            sources.add_library(elm)
        return
    for k, v in obj.items():
        if isinstance(v, (dict, list)):
            harvest(v, sources, f"{where}.{k}")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read {exc.strerror or 'file'}", path=str(path)) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not JSON ({exc.__class__.__name__})", path=str(path)) from exc


def load_sources(*inputs: str | Path | dict[str, Any]) -> Sources:
    """ELM + value sets from files, directories (recursively, ``*.json``) or already-parsed JSON."""
    sources = Sources()
    for item in inputs:
        if isinstance(item, dict):
            harvest(item, sources)
            continue
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.json")
                           if not {"forms", "node_modules"} & set(p.relative_to(path).parts[:-1]))
        elif path.is_file():
            files = [path]
        else:
            raise InputError("no such file or directory", path=str(path))
        for f in files:
            harvest(_read_json(f), sources, str(f))
    if not sources.libraries:
        raise InputError("no ELM libraries found", path=", ".join(str(i) for i in inputs if not isinstance(i, dict)))
    return sources


def read_bundle(path: str | Path) -> dict[str, Any]:
    """A patient Bundle from a file (a typed error when it is not one)."""
    data = _read_json(Path(path))
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise InputError("patient data must be a FHIR Bundle", path=str(path))
    return data

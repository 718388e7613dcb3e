"""Derive the type labels of required-binding ``code`` elements from the FHIR R4 core package.

The reference engine (cql-exec-fhir) gives each ``code`` element with a *required* binding its own type in
its FHIR model info, and prints values under that name: Patient.gender is ``AdministrativeGender``. Our R4
element tables (fhirpathpy's) only say ``code``, so this script derives the names from the specification's
StructureDefinitions and writes them to ``data/r4_bound_codes.json``, one table per model-info version:

    python -m fhir_pa.dtr.elm.tools.make_bindings hl7.fhir.r4.core-4.0.1.tgz [-o OUT.json]

Elements: base definitions only (``derivation = specialization``; resources and complex types), sole type
``code``, binding strength ``required``. Elements that reuse another's definition (``contentReference``)
are not listed: the engine types them by the element they refer to. Labels, as the model infos name them:

* 4.0.1 — the binding's ``elementdefinition-bindingName``, first letter upper-cased and ``-`` turned into
  ``_`` + upper-case (``messageheader-response-request`` → ``Messageheader_Response_Request``).
* 4.0.0 (an older model-info generator) — the bound ValueSet's ``name`` made an identifier (split at ``-``
  or ``.``, later parts capitalised, digits dropped: ``messageheader-response-request`` →
  ``messageheaderResponseRequest``, ``v3.ConfidentialityClassification`` → ``vConfidentialityClassification``);
  no label (plain ``code``) when the name has a space; for *common* bindings
  (``elementdefinition-isCommonBinding``) the binding name instead, and no label for the type-name and
  external value sets in ``UNLABELLED_400``. ``EXCEPTIONS_400`` holds the few labels that follow from the
  FHIR 4.0.0 definitions, not from 4.0.1's (see tests/data/dtr/README.md).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

EXT = "http://hl7.org/fhir/StructureDefinition/elementdefinition-"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "r4_bound_codes.json"
#: Common value sets the 4.0.0 model info leaves as plain ``code`` (type names; external code systems).
UNLABELLED_400 = frozenset({"http://hl7.org/fhir/ValueSet/resource-types", "http://hl7.org/fhir/ValueSet/all-types",
                            "http://hl7.org/fhir/ValueSet/defined-types", "http://hl7.org/fhir/ValueSet/mimetypes",
                            "http://hl7.org/fhir/ValueSet/currencies"})
#: 4.0.0 model-info labels that the 4.0.1 definitions cannot give: the binding or ValueSet name changed in
#: the 4.0.1 technical correction (``None`` = plain ``code``). Checked against cql-exec-fhir 2.2.0.
EXCEPTIONS_400: Mapping[str, str | None] = {
    "Consent.status": "EventStatus",
    "Expression.language": "ExpressionLanguage",  # 4.0.1: an extensible binding
    "Medication.status": "MedicationStatusCodes",  # 4.0.1 ValueSet name "Medication Status Codes"
    "MedicationStatement.status": "MedicationStatusCodes",
    "MedicationRequest.intent": "MedicationRequestIntent",  # 4.0.1 ValueSet name "medicationRequest Intent"
    "MedicationRequest.status": "MedicationRequestStatus",  # 4.0.1 ValueSet name "medicationrequest Status"
    "ParameterDefinition.use": None,
    "ResearchElementDefinition.variableType": "VariableType",
    "Timing.repeat.dayOfWeek": None,
}


def label_401(binding_name: str) -> str:
    """The 4.0.1 model-info type name for a binding name."""
    return "_".join(p[:1].upper() + p[1:] for p in binding_name.split("-"))


def label_400(valueset_name: str) -> str | None:
    """The 4.0.0 model-info type name for a ValueSet name (``None``: the element stays ``code``)."""
    if " " in valueset_name:
        return None
    first, *rest = re.split(r"[^A-Za-z0-9]+", valueset_name)
    return re.sub(r"[0-9]", "", first + "".join(p[:1].upper() + p[1:] for p in rest)) or None


def package_resources(package: Path, kind: str) -> Iterator[dict[str, Any]]:
    """The ``kind`` resources (StructureDefinition, ValueSet) of an NPM package (``.tgz``), in file order."""
    with tarfile.open(package, "r:gz") as tar:
        members = sorted((m for m in tar.getmembers()
                          if m.isfile() and re.fullmatch(rf"package/{kind}-[^/]+\.json", m.name)),
                         key=lambda m: m.name)
        for m in members:
            f = tar.extractfile(m)
            doc = json.load(f) if f is not None else None
            if isinstance(doc, dict) and doc.get("resourceType") == kind:
                yield doc


def _ext(binding: Mapping[str, Any], name: str) -> Any:
    return next((x.get("valueString", x.get("valueBoolean")) for x in binding.get("extension") or []
                 if x.get("url") == EXT + name), None)


def bound_codes(definitions: Iterable[Mapping[str, Any]], valueset_names: Mapping[str, str],
                exceptions: Mapping[str, str | None] = EXCEPTIONS_400) -> dict[str, dict[str, str]]:
    """``{"4.0.1": {path: label}, "4.0.0": {path: label}}`` for the required-binding ``code`` elements."""
    v401: dict[str, str] = {}
    v400: dict[str, str] = {}
    for sd in definitions:
        if sd.get("derivation") != "specialization" or sd.get("kind") not in ("resource", "complex-type"):
            continue
        for el in (sd.get("snapshot") or {}).get("element") or []:
            binding = el.get("binding") or {}
            if [t.get("code") for t in el.get("type") or []] != ["code"] or binding.get("strength") != "required":
                continue
            path, name = str(el["path"]), _ext(binding, "bindingName")
            if isinstance(name, str) and name:
                v401[path] = label_401(name)
            url = str(binding.get("valueSet") or "").split("|")[0]
            if _ext(binding, "isCommonBinding") is True:
                if url not in UNLABELLED_400 and isinstance(name, str) and name:
                    v400[path] = name
            elif (vs_label := label_400(valueset_names.get(url, " "))) is not None:
                v400[path] = vs_label
    for path, fixed in exceptions.items():
        if fixed is None:
            v400.pop(path, None)
        else:
            v400[path] = fixed
    return {"4.0.1": dict(sorted(v401.items())), "4.0.0": dict(sorted(v400.items()))}


def derive(package: Path, exceptions: Mapping[str, str | None] = EXCEPTIONS_400) -> dict[str, dict[str, str]]:
    """The label tables for one R4 core package."""
    names = {str(vs["url"]): str(vs["name"]) for vs in package_resources(package, "ValueSet")
             if vs.get("url") and vs.get("name")}
    return bound_codes(package_resources(package, "StructureDefinition"), names, exceptions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("package", type=Path, help="hl7.fhir.r4.core 4.0.1 package (.tgz)")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help=f"output JSON (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    tables = derive(args.package)
    if not tables["4.0.1"]:
        print(f"no required-binding code elements found in {args.package}", file=sys.stderr)
        return 1
    doc = {"source": "derived from the hl7.fhir.r4.core 4.0.1 StructureDefinitions and ValueSets by "
                     "fhir_pa.dtr.elm.tools.make_bindings; element path -> type label per FHIR model version",
           "labels": tables}
    args.out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(tables['4.0.1'])} (4.0.1) / {len(tables['4.0.0'])} (4.0.0) elements -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

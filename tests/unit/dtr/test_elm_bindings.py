"""Labels of required-binding ``code`` elements: derived from the R4 spec, named per model, output-only."""

from __future__ import annotations

import io
import json
import tarfile
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from fhir_pa.dtr.elm import encode, fhir
from fhir_pa.dtr.elm.tools import make_bindings as mb
from tests.conftest import fixture_path

EXT = "http://hl7.org/fhir/StructureDefinition/elementdefinition-"


def _binding(strength: str, name: str | None, vs: str, common: bool = False) -> dict[str, Any]:
    ext: list[dict[str, Any]] = [] if name is None else [{"url": EXT + "bindingName", "valueString": name}]
    if common:
        ext.append({"url": EXT + "isCommonBinding", "valueBoolean": True})
    return {"strength": strength, "valueSet": vs + "|4.0.1", "extension": ext}


def _sd(name: str, elements: list[dict[str, Any]], derivation: str = "specialization") -> dict[str, Any]:
    return {"resourceType": "StructureDefinition", "name": name, "kind": "resource", "derivation": derivation,
            "snapshot": {"element": [{"path": name}, *elements]}}


def _package(tmp_path: Path, *resources: dict[str, Any]) -> Path:
    out = tmp_path / "core.tgz"
    with tarfile.open(out, "w:gz") as tar:
        for i, res in enumerate(resources):
            data = json.dumps(res).encode()
            info = tarfile.TarInfo(f"package/{res['resourceType']}-{i}.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


VS = "http://hl7.org/fhir/ValueSet/"
CODE = [{"code": "code"}]


def test_rules_on_a_small_package(tmp_path: Path) -> None:
    sd = _sd("Thing", [
        {"path": "Thing.status", "type": CODE, "binding": _binding("required", "ThingStatus", VS + "req-status")},
        {"path": "Thing.kind", "type": CODE, "binding": _binding("extensible", "ThingKind", VS + "req-status")},
        {"path": "Thing.mode", "type": CODE, "binding": _binding("required", "mode-type", VS + "spaced")},
        {"path": "Thing.lang", "type": CODE, "binding": _binding("required", "Lang", VS + "mimetypes", common=True)},
        {"path": "Thing.out", "type": CODE, "binding": _binding("required", "Outcome", VS + "req-status", common=True)},
        {"path": "Thing.coded", "type": [{"code": "Coding"}], "binding": _binding("required", "X", VS + "req-status")},
        {"path": "Thing.part.status", "contentReference": "#Thing.status"},
    ])
    profile = _sd("Other", [{"path": "Other.status", "type": CODE,
                             "binding": _binding("required", "OtherStatus", VS + "req-status")}], "constraint")
    pkg = _package(tmp_path, sd, profile,
                   {"resourceType": "ValueSet", "url": VS + "req-status", "name": "RequestStatus"},
                   {"resourceType": "ValueSet", "url": VS + "spaced", "name": "Mode Codes"},
                   {"resourceType": "ValueSet", "url": VS + "mimetypes", "name": "MimeTypes"})
    tables = mb.derive(pkg, exceptions={})
    # 4.0.1: binding names; only required, code-typed, base-definition elements
    assert tables["4.0.1"] == {"Thing.lang": "Lang", "Thing.mode": "Mode_Type", "Thing.out": "Outcome",
                               "Thing.status": "ThingStatus"}
    # 4.0.0: ValueSet names; a spaced name or an unlabelled common set stays code; common bindings by name
    assert tables["4.0.0"] == {"Thing.out": "Outcome", "Thing.status": "RequestStatus"}


def test_cli_writes_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sd = _sd("Thing", [{"path": "Thing.status", "type": CODE,
                        "binding": _binding("required", "ThingStatus", VS + "x")}])
    out = tmp_path / "labels.json"
    assert mb.main([str(_package(tmp_path, sd)), "-o", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["labels"]["4.0.1"] == {"Thing.status": "ThingStatus"}
    assert mb.main([str(_package(tmp_path)), "-o", str(out)]) == 1  # nothing found: no silent empty table
    assert "no required-binding" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "label"), [("AdministrativeGender", "AdministrativeGender"),
                                             ("qualityType", "QualityType"), ("status", "Status"),
                                             ("messageheader-response-request", "Messageheader_Response_Request")])
def test_label_401(name: str, label: str) -> None:
    assert mb.label_401(name) == label


@pytest.mark.parametrize(("name", "label"), [("RequestStatus", "RequestStatus"), ("qualityType", "qualityType"),
                                             ("messageheader-response-request", "messageheaderResponseRequest"),
                                             ("v3.ConfidentialityClassification", "vConfidentialityClassification"),
                                             ("Mime Types", None)])
def test_label_400(name: str, label: str | None) -> None:
    assert mb.label_400(name) == label


def test_shipped_table_is_what_the_script_derives() -> None:
    package = fixture_path("packages", "hl7.fhir.r4.core-4.0.1.rebuilt.tgz")
    shipped = json.loads(files("fhir_pa.dtr.elm").joinpath("data", "r4_bound_codes.json").read_text("utf-8"))
    assert shipped["labels"] == mb.derive(package) == fhir.BOUND_CODES
    assert len(fhir.BOUND_CODES["4.0.1"]) > 300 and len(fhir.BOUND_CODES["4.0.0"]) > 300


def test_every_labelled_element_is_a_code_in_our_type_tables() -> None:
    """A key our R4 tables do not type as ``code`` could never be looked up (a silent miss)."""
    for table in fhir.BOUND_CODES.values():
        assert {k for k in table if fhir.PATH_TYPES.get(k) != "code"} == set()


def test_model_400_exceptions_are_exactly_what_the_rules_miss() -> None:
    """The documented 4.0.0 labels that the 4.0.1 definitions cannot give (see tests/data/dtr/README.md)."""
    package = fixture_path("packages", "hl7.fhir.r4.core-4.0.1.rebuilt.tgz")
    by_rule = mb.derive(package, exceptions={})["4.0.0"]
    shipped = fhir.BOUND_CODES["4.0.0"]
    assert {k for k in by_rule.keys() | shipped.keys() if by_rule.get(k) != shipped.get(k)} == set(mb.EXCEPTIONS_400)
    for path, label in mb.EXCEPTIONS_400.items():
        assert shipped.get(path) == label


def test_labels_are_output_only() -> None:
    patient = fhir.resource({"resourceType": "Patient", "id": "p", "gender": "female"})
    other = fhir.resource({"resourceType": "Patient", "id": "q", "gender": "female"})
    gender, again = fhir.child(patient, "gender"), fhir.child(other, "gender")
    assert (gender.type, gender.element) == ("code", "Patient.gender")
    assert fhir.is_subtype(gender.type, "code") and gender == again  # semantics see a plain code
    assert fhir.primitive_value(gender) == "female"
    assert encode(gender) == {"@fhir": "AdministrativeGender", "value": {"value": "female"}}
    dr = fhir.resource({"resourceType": "DeviceRequest", "id": "d", "status": "active"})
    status = fhir.child(dr, "status")
    assert [fhir.type_label(status, m) for m in ("401", "400", "300")] == ["DeviceRequestStatus", "RequestStatus",
                                                                           "code"]
    lang = fhir.child(fhir.resource({"resourceType": "Patient", "language": "en"}), "language")
    assert fhir.type_label(lang, "401") == "code"  # a preferred binding: no label

"""Loading ELM and value sets from every shape a payer ships, compile caching, and typed input errors."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from fhir_pa.cli import errors as cli_errors
from fhir_pa.cli.main import app
from fhir_pa.dtr.elm import ElmEngine, ElmError, load_sources, valueset_from_fhir
from fhir_pa.errors import InputError
from tests.conftest import fixture_path
from tests.unit.dtr.elm_helpers import FH, bundle, library, lit


def _library_resource(elm: dict[str, Any]) -> dict[str, Any]:
    data = base64.b64encode(json.dumps(elm).encode()).decode()
    return {"resourceType": "Library", "id": "x", "content": [{"contentType": "text/cql", "data": "bGlicmFyeQ=="},
                                                             {"contentType": "application/elm+json", "data": data}]}


def _vs_lib() -> dict[str, Any]:
    return library({"InVS": {"type": "Retrieve", "dataType": FH + "Condition", "codeProperty": "code",
                             "codeComparator": "in", "codes": {"type": "ValueSetRef", "name": "V"}}},
                   name="Main", valueSets={"def": [{"name": "V", "id": "http://vs/1"}]})


def _valueset(expanded: bool) -> dict[str, Any]:
    vs: dict[str, Any] = {"resourceType": "ValueSet", "id": "1", "url": "http://vs/1",
                          "compose": {"include": [{"system": "http://x", "concept": [{"code": "A"}]},
                                                  {"system": "http://y", "concept": [{"code": "B"}]}]}}
    if expanded:
        vs["expansion"] = {"contains": [{"system": "http://x", "code": "Z"}]}
    return vs


def test_package_as_parameters_with_base64_libraries_and_unexpanded_valueset() -> None:
    package = {"resourceType": "Parameters", "parameter": [{"name": "packagebundle", "resource": {
        "resourceType": "Bundle", "entry": [{"resource": _library_resource(_vs_lib())},
                                            {"resource": _valueset(expanded=False)}]}}]}
    engine = ElmEngine(load_sources(package))
    conds = [{"resourceType": "Condition", "id": i, "code": {"coding": [{"system": s, "code": c}]}}
             for i, s, c in (("c1", "http://x", "A"), ("c2", "http://y", "B"), ("c3", "http://y", "A"))]
    got = engine.evaluate(bundle(*conds), now="2024-01-01T00:00:00Z")[0].results["InVS"]
    assert [r.json["id"] for r in got] == ["c1", "c2"]  # every compose.include, matched on system + code


def test_missing_value_set_is_an_elm_error_naming_it() -> None:
    engine = ElmEngine(load_sources(_vs_lib()))
    with pytest.raises(ElmError) as info:
        engine.evaluate(bundle(), now="2024-01-01T00:00:00Z")
    assert info.value.define == "InVS" and info.value.library == "Main"
    assert "http://vs/1" in info.value.message


def test_expansion_wins_over_compose() -> None:
    assert valueset_from_fhir(_valueset(expanded=True)).codes == frozenset({("http://x", "Z")})


def test_directory_of_elm_files_resolves_includes_by_name_and_version(tmp_path: Path) -> None:
    helper = library({"H": lit(41)}, name="Helper", version="2.0")
    main = library({"M": {"type": "Add", "operand": [{"type": "ExpressionRef", "libraryName": "Hl", "name": "H"},
                                                     lit(1)]}}, name="Main",
                   includes={"def": [{"localIdentifier": "Hl", "path": "Helper", "version": "2.0"}]})
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "helper.json").write_text(json.dumps(helper))
    (tmp_path / "main.json").write_text(json.dumps(main))
    engine = ElmEngine(load_sources(tmp_path))
    assert [lib.name for lib in engine.main_libraries()] == ["Main"]
    assert engine.evaluate(bundle(), now="2024-01-01T00:00:00Z")[0].results == {"M": 42}


def test_missing_include_version_is_a_typed_error() -> None:
    main = library({"M": lit(1)}, name="Main",
                   includes={"def": [{"localIdentifier": "H", "path": "Helper", "version": "9"}]})
    with pytest.raises(ElmError, match="Helper version 9"):
        ElmEngine(load_sources(main, library({"H": lit(1)}, name="Helper", version="2.0")))


def test_libraries_compile_once_and_are_shared_across_engines() -> None:
    path = fixture_path("dtr", "packages", "rad-package-bundle.testkit.json")
    a, b = ElmEngine(load_sources(path)), ElmEngine(load_sources(path))
    assert a.libraries["FHIRHelpers|4.0.0"] is b.libraries["FHIRHelpers|4.0.0"]
    assert len(a.libraries) == 7


def test_memoised_defines_are_evaluated_once_per_patient() -> None:
    calls: list[int] = []
    engine = ElmEngine(load_sources(library({"A": lit(1), "B": {"type": "ExpressionRef", "name": "A"},
                                             "C": {"type": "ExpressionRef", "name": "A"}})))
    lib = engine.libraries["T|1.0.0"]
    inner = lib.defines["A"]
    lib.defines["A"] = lambda f: calls.append(1) or inner(f)  # type: ignore[func-returns-value]
    try:
        engine.evaluate(bundle(), now="2024-01-01T00:00:00Z")
    finally:
        lib.defines["A"] = inner
    assert calls == [1]


@pytest.mark.parametrize("content", ["not json", json.dumps({"resourceType": "Patient"})])
def test_bad_sources_are_input_errors_with_a_path(tmp_path: Path, content: str) -> None:
    f = tmp_path / "x.json"
    f.write_text(content)
    with pytest.raises(InputError) as info:
        load_sources(f)
    assert info.value.path and "x.json" in info.value.path


def test_bad_base64_library_is_an_input_error() -> None:
    lib = {"resourceType": "Library", "content": [{"contentType": "application/elm+json", "data": "%%%"}]}
    with pytest.raises(InputError) as info:
        load_sources({"resourceType": "Bundle", "entry": [{"resource": lib}]})
    assert info.value.path == "$.entry[0].resource.content[0]"


def _cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["fhir-pa", "dtr", "eval", *argv])
    return cli_errors.run(app)


def test_cli_bad_input_is_one_stderr_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    elm = tmp_path / "t.json"
    elm.write_text(json.dumps(library({"A": lit(1)})))
    patient = tmp_path / "p.json"
    patient.write_text(json.dumps({"resourceType": "Patient"}))
    assert _cli([str(elm), "--patient", str(patient)], monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"fhir-pa: input error: patient data must be a FHIR Bundle (at {patient})"]
    patient.write_text(json.dumps(bundle()))
    assert _cli([str(elm), "--patient", str(patient), "--param", "x"], monkeypatch) == 2
    assert "NAME=Type/id" in capsys.readouterr().err
    assert _cli([str(elm), "--patient", str(patient), "--now", "yesterday"], monkeypatch) == 2
    assert "--now" in capsys.readouterr().err


def test_cli_evaluation_error_is_one_line_without_patient_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    elm = tmp_path / "t.json"
    names = {"type": "Property", "path": "name",
             "source": {"type": "SingletonFrom", "operand": {"type": "Retrieve", "dataType": FH + "Patient"}}}
    elm.write_text(json.dumps(library({"Name": {"type": "SingletonFrom", "operand": names, "locator": "3:1-3:9"}})))
    patient = tmp_path / "p.json"
    patient.write_text(json.dumps({"resourceType": "Bundle", "entry": [{"resource": {
        "resourceType": "Patient", "id": "p", "name": [{"family": "Secret"}, {"family": "Hidden"}]}}]}))
    assert _cli([str(elm), "--patient", str(patient)], monkeypatch) == 10  # EXIT_CODES["elm"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "elm error" in err and "T.Name@3:1-3:9" in err
    assert "Secret" not in err and "Hidden" not in err


def test_cli_prints_defines_as_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    elm = tmp_path / "t.json"
    elm.write_text(json.dumps(library({"A": lit(1.5), "B": {"type": "Today"}})))
    patient = tmp_path / "p.json"
    patient.write_text(json.dumps(bundle()))
    assert _cli([str(elm), "--patient", str(patient), "--now", "2024-02-03T04:05:06Z"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "T|1.0.0  (patient p)" in out
    assert '  A: 1.5' in out and '  B: {"@type": "Date", "value": "2024-02-03"}' in out

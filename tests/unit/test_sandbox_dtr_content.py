"""The sandbox payer's DTR forms: generated files up to date, Libraries complete, ELM running on the EHR chart."""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fhir_pa.dtr.elm import ElmEngine, load_sources
from fhir_pa.errors import ConfigurationError
from fhir_pa_sandbox.config import packaged_data
from fhir_pa_sandbox.crd_rules import load_crd_rules
from fhir_pa_sandbox.dtr_content import CQF_LIBRARY, DtrContent, Form, load_dtr_content, walk_items

Json = dict[str, Any]
DATA = Path(str(packaged_data("dtr")))
NOW = "2026-12-01T12:00:00Z"
NEB = "http://fhir-pa.example/sandbox/Questionnaire/home-nebulizer|1.0.0"
CPAP = "http://fhir-pa.example/sandbox/Questionnaire/cpap-management|1.0.0"
ADAPTIVE = "http://fhir-pa.example/sandbox/Questionnaire/home-oxygen-adaptive|1.0.0"
INITIAL = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-initialExpression"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_content", DATA / "make_content.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _contents(library: Json) -> dict[str, str]:
    return {c["contentType"]: base64.b64decode(c["data"]).decode("utf-8") for c in library["content"]}


def _chart() -> Json:
    chart: Json = json.loads(packaged_data("ehr/chart.json").read_text(encoding="utf-8"))
    return chart


def patient_bundle(patient_id: str, *extra: Json) -> Json:
    """One patient's slice of the sandbox chart (what a DTR client would fetch), plus ``extra`` resources."""
    mine = f"Patient/{patient_id}"
    entries = []
    for entry in _chart()["entry"]:
        res = entry["resource"]
        owner = (res.get("subject") or res.get("beneficiary") or res.get("patient") or {}).get("reference")
        if (res["resourceType"] == "Patient" and res["id"] == patient_id) or owner == mine:
            entries.append({"resource": res})
    entries.sort(key=lambda e: e["resource"]["resourceType"] != "Patient")
    return {"resourceType": "Bundle", "type": "collection", "entry": [*entries, *({"resource": r} for r in extra)]}


def _engine(form: Form) -> ElmEngine:
    package = {"resourceType": "Bundle", "type": "collection",
               "entry": [{"resource": r} for r in (*form.libraries, *form.valuesets)]}
    return ElmEngine(load_sources(package))


def _results(form: Form, bundle: Json) -> dict[str, Any]:
    main = [r for r in _engine(form).evaluate(bundle, now=NOW)]
    assert len(main) == 1 and main[0].error is None
    return main[0].results


@pytest.fixture(scope="module")
def content() -> DtrContent:
    return load_dtr_content()


def test_generated_files_are_up_to_date() -> None:
    expected = _generator().files()
    assert len(expected) >= 12
    for relative, text in expected.items():
        assert (DATA / relative).read_text(encoding="utf-8") == text, f"rerun make_content.py: {relative} differs"


def test_every_library_carries_its_cql_and_elm(content: DtrContent) -> None:
    libraries = {lib["url"]: lib for form in content.forms.values() for lib in form.libraries}
    assert len(libraries) == 3
    for lib in libraries.values():
        texts = _contents(lib)
        assert set(texts) == {"text/cql", "application/elm+json"}
        header = re.search(r"^library (\w+) version '([^']+)'", texts["text/cql"], re.M)
        assert header and header.groups() == (lib["name"], lib["version"])
        assert not re.search(r"^include FHIRHelpers", texts["text/cql"], re.M)
        elm = json.loads(texts["application/elm+json"])
        assert all(i["path"] != "FHIRHelpers" for i in elm["library"].get("includes", {}).get("def", []))
        assert elm["library"]["identifier"] == {"id": lib["name"], "version": lib["version"]}
        cql_defines = set(re.findall(r'^define "([^"]+)"', texts["text/cql"], re.M))
        elm_defines = {d["name"] for d in elm["library"]["statements"]["def"]} - {"Patient"}
        assert cql_defines == elm_defines


def test_nebulizer_library_finds_the_copd_on_alexs_chart(content: DtrContent) -> None:
    form = content.forms[NEB]
    alex = _results(form, patient_bundle("pat-alex"))
    assert alex["PatientName"] == "Alex Sample"
    assert alex["PatientAge"] == 58
    assert alex["HasQualifyingDiagnosis"] is True
    assert alex["PrimaryDiagnosis"].json == {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J44.9",
                                             "display": "Chronic obstructive pulmonary disease, unspecified"}
    jordan = _results(form, patient_bundle("pat-jordan"))
    assert jordan["HasQualifyingDiagnosis"] is False and jordan["PrimaryDiagnosis"] is None


def test_every_define_evaluates_for_every_chart_patient(content: DtrContent) -> None:
    for form in content.forms.values():
        if not form.libraries:
            continue
        for patient in ("pat-alex", "pat-jordan", "pat-casey"):
            results = _results(form, patient_bundle(patient))
            assert results["Patient"].json["id"] == patient
            assert isinstance(results["PatientName"], str) and isinstance(results["PatientAge"], int)


def test_cpap_library_counts_only_active_sleep_apnea(content: DtrContent) -> None:
    condition: Json = {"resourceType": "Condition", "id": "c-osa", "subject": {"reference": "Patient/pat-jordan"},
                       "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                      "condition-clinical", "code": "active"}]},
                       "code": {"coding": [{"system": "http://snomed.info/sct", "code": "78275009"},
                                           {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "G47.33"}]}}
    form = content.forms[CPAP]
    active = _results(form, patient_bundle("pat-jordan", condition))
    assert active["HasSleepApneaDiagnosis"] is True
    assert active["SleepApneaDiagnosis"].json["code"] == "G47.33"  # the SNOMED coding is not in the ValueSet
    resolved = copy.deepcopy(condition)
    resolved["clinicalStatus"]["coding"][0]["code"] = "resolved"
    assert _results(form, patient_bundle("pat-jordan", resolved))["HasSleepApneaDiagnosis"] is False


def test_initial_expressions_name_defines_of_the_forms_library(content: DtrContent) -> None:
    seen = 0
    for form in content.forms.values():
        libraries = {e["valueCanonical"] for e in form.questionnaire.get("extension", []) if e["url"] == CQF_LIBRARY}
        names = {lib["name"]: lib for lib in form.libraries if f"{lib['url']}|{lib['version']}" in libraries}
        for item in walk_items(form.questionnaire.get("item")):
            for ext in item.get("extension", []):
                if ext["url"] != INITIAL:
                    continue
                expression = ext["valueExpression"]
                assert expression["language"] == "text/cql-identifier"
                library, define = re.fullmatch(r'"(\w+)"\.(\w+)', expression["expression"]).groups()  # type: ignore[union-attr]
                elm = json.loads(_contents(names[library])["application/elm+json"])
                assert define in {d["name"] for d in elm["library"]["statements"]["def"]}
                seen += 1
    assert seen == 8


def test_valuesets_are_expanded_and_bound_items_resolve(content: DtrContent) -> None:
    for form in content.forms.values():
        by_canonical = {f"{vs['url']}|{vs['version']}": vs for vs in form.valuesets}
        for item in walk_items(form.questionnaire.get("item")):
            if "answerValueSet" in item:
                assert item["answerValueSet"] in by_canonical
        for vs in form.valuesets:
            concepts = [(inc["system"], c["code"]) for inc in vs["compose"]["include"] for c in inc["concept"]]
            contains = [(c["system"], c["code"]) for c in vs["expansion"]["contains"]]
            assert contains == concepts and vs["expansion"]["total"] == len(contains) < 40
    assert len(content.forms[NEB].valuesets) == 2 and len(content.forms[CPAP].valuesets) == 1


def test_enable_when_branches_point_at_earlier_answers(content: DtrContent) -> None:
    branches = 0
    for form in content.forms.values():
        items = {i["linkId"]: i for i in walk_items(form.questionnaire.get("item"))}
        assert len(items) == len(list(walk_items(form.questionnaire.get("item"))))  # linkIds unique
        for item in items.values():
            for condition in item.get("enableWhen", []):
                source = items[condition["question"]]
                branches += 1
                if "answerCoding" in condition:
                    vs = next(v for v in form.valuesets if f"{v['url']}|{v['version']}" == source["answerValueSet"])
                    assert condition["answerCoding"]["code"] in {c["code"] for c in vs["expansion"]["contains"]}
                else:
                    assert source["type"] == "boolean"
    assert branches == 2


def test_library_closure_and_adaptive_shell(content: DtrContent) -> None:
    nebulizer = content.forms[NEB]
    assert [lib["name"] for lib in nebulizer.libraries] == ["HomeNebulizerPrepopulation", "SandboxPatientInfo"]
    adaptive = content.forms[ADAPTIVE]
    assert adaptive.adaptive and not nebulizer.adaptive
    assert "item" not in adaptive.questionnaire and adaptive.libraries == ()
    assert content.find(NEB.split("|")[0]) is nebulizer
    assert content.find(NEB.replace("1.0.0", "9.9.9")) is None


def test_every_crd_questionnaire_is_served() -> None:
    content = load_dtr_content()
    named = [q for rule in load_crd_rules().codes.values() for q in rule.questionnaires]
    assert named and all(content.find(q) is not None for q in named)


def test_a_form_naming_a_missing_library_is_a_configuration_error(content: DtrContent) -> None:
    broken = copy.deepcopy(content.forms[NEB].questionnaire)
    with pytest.raises(ConfigurationError, match="HomeNebulizerPrepopulation"):
        DtrContent([broken], [], [])

"""Prepopulation rules on small hand-written Questionnaires: enableWhen, steady state, resume, FHIRPath, queries."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from fhir_pa.cli.main import app
from fhir_pa.dtr.origin import origin_extension
from fhir_pa.dtr.prepopulate import (
    CALCULATED,
    CANDIDATE,
    ENABLE_WHEN_EXPR,
    INITIAL,
    VARIABLE,
    PopulateError,
    PopulateResult,
    enable_when_holds,
    populate,
)
from fhir_pa.fhir.memory import MemoryFhirServer
from tests.conftest import fixture_path, load_fixture

NOW = "2026-01-15T10:00:00.000Z"
PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1970-05-06",
           "name": [{"family": "Lee", "given": ["Ann"]}]}
CHART = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": PATIENT}]}


def fp(url: str, expression: str, name: str | None = None, language: str = "text/fhirpath") -> dict[str, Any]:
    value: dict[str, Any] = {"language": language, "expression": expression}
    if name:
        value["name"] = name
    return {"url": url, "valueExpression": value}


def package(*items: dict[str, Any], extension: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    q: dict[str, Any] = {"resourceType": "Questionnaire", "id": "q", "url": "http://example.org/Questionnaire/q",
                         "version": "1", "status": "active", "item": list(items)}
    if extension:
        q["extension"] = extension
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": q}]}


def answers(result: PopulateResult) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            if "answer" in item:
                out[item["linkId"]] = [next(v for k, v in a.items() if k.startswith("value")) for a in item["answer"]]
            walk(item.get("item") or [])

    walk(result.response.get("item") or [])
    return out


def sources(result: PopulateResult, link: str) -> list[str]:
    def find(items: list[dict[str, Any]]) -> dict[str, Any] | None:
        for item in items:
            if item["linkId"] == link:
                return item
            hit = find(item.get("item") or [])
            if hit:
                return hit
        return None

    item = find(result.response["item"]) or {}
    return [p["valueCode"] for a in item.get("answer", []) for e in a["extension"] for p in e["extension"]
            if p["url"] == "source"]


# --- enableWhen ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("op", "value", "enabled"), [
    ("=", 5, True), ("=", 4, False), ("!=", 4, True), ("!=", 5, False), (">", 4, True), (">", 5, False),
    ("<", 6, True), ("<", 5, False), (">=", 5, True), (">=", 6, False), ("<=", 5, True), ("<=", 4, False),
])
def test_enable_when_operators_on_a_populated_integer(op: str, value: int, enabled: bool) -> None:
    pkg = package({"linkId": "n", "type": "integer", "extension": [fp(INITIAL, "5")]},
                  {"linkId": "d", "type": "string", "extension": [fp(INITIAL, "'shown'")],
                   "enableWhen": [{"question": "n", "operator": op, "answerInteger": value}]})
    assert ("d" in answers(populate(pkg, CHART, now=NOW))) is enabled


def test_enable_when_exists_coding_and_behaviour() -> None:
    assert enable_when_holds({"question": "x", "operator": "exists", "answerBoolean": False}, [])
    assert not enable_when_holds({"question": "x", "operator": "exists", "answerBoolean": True}, [])
    assert enable_when_holds({"operator": "=", "answerCoding": {"system": "s", "code": "a"}},
                             [{"valueCoding": {"system": "s", "code": "a", "display": "A"}}])
    assert not enable_when_holds({"operator": "=", "answerCoding": {"system": "s", "code": "a"}},
                                 [{"valueCoding": {"system": "t", "code": "a"}}])
    assert enable_when_holds({"operator": ">=", "answerQuantity": {"value": 89}}, [{"valueQuantity": {"value": 90}}])
    both = [{"question": "a", "operator": "exists", "answerBoolean": True},
            {"question": "b", "operator": "exists", "answerBoolean": True}]
    items: list[dict[str, Any]] = [{"linkId": "a", "type": "boolean", "extension": [fp(INITIAL, "true")]},
             {"linkId": "b", "type": "boolean"}]
    any_of = package(*items, {"linkId": "c", "type": "string", "extension": [fp(INITIAL, "'x'")],
                              "enableWhen": both, "enableBehavior": "any"})
    all_of = package(*items, {"linkId": "c", "type": "string", "extension": [fp(INITIAL, "'x'")],
                              "enableWhen": both, "enableBehavior": "all"})
    assert "c" in answers(populate(any_of, CHART, now=NOW))
    assert "c" not in answers(populate(all_of, CHART, now=NOW))


def test_disabled_parent_hides_its_children_and_enable_when_expression_decides() -> None:
    late, early = fp(ENABLE_WHEN_EXPR, "%patient.birthDate > @1980-01-01"), fp(ENABLE_WHEN_EXPR,
                                                                                 "%patient.birthDate < @1980-01-01")
    pkg = package({"linkId": "g", "type": "group", "extension": [late],
                   "item": [{"linkId": "g.1", "type": "string", "extension": [fp(INITIAL, "'x'")]}]},
                  {"linkId": "h", "type": "group", "extension": [early],
                   "item": [{"linkId": "h.1", "type": "string", "extension": [fp(INITIAL, "'y'")]}]})
    assert answers(populate(pkg, CHART, now=NOW)) == {"h.1": ["y"]}


# --- steady state ----------------------------------------------------------------------------------------------------

def test_calculated_chain_reaches_a_steady_state() -> None:
    pkg = package({"linkId": "a", "type": "integer", "extension": [fp(INITIAL, "2")]},
                  {"linkId": "b", "type": "integer", "extension": [
                      fp(CALCULATED, "%resource.item.where(linkId='a').answer.value + 1")]},
                  {"linkId": "c", "type": "string", "extension": [fp(INITIAL, "'late'")],
                   "enableWhen": [{"question": "b", "operator": "=", "answerInteger": 3}]})
    result = populate(pkg, CHART, now=NOW)
    assert answers(result) == {"a": [2], "b": [3], "c": ["late"]}
    assert result.errors == [] and result.rounds >= 3


def test_oscillation_stops_population_with_an_error() -> None:
    flip = "iif(%resource.item.where(linkId='a').answer.value = true, false, true)"
    result = populate(package({"linkId": "a", "type": "boolean", "extension": [fp(CALCULATED, flip)]}), CHART, now=NOW)
    assert [e.message for e in result.errors] == [
        "enableWhen/calculated answers oscillate; automatic population stopped (spec-67)"]


# --- FHIRPath context ------------------------------------------------------------------------------------------------

def test_fhirpath_variables_scope_and_sdc_context() -> None:
    pkg = package(
        {"linkId": "g", "type": "group", "extension": [fp(VARIABLE, "%patient.name.first().family", "fam")],
         "item": [{"linkId": "g.1", "type": "string", "extension": [fp(INITIAL, "%fam + '/' + %qitem.linkId")]},
                  {"linkId": "g.2", "type": "string", "extension": [fp(INITIAL, "%questionnaire.version")]}]},
        {"linkId": "o", "type": "string", "extension": [fp(INITIAL, "%fam")]},
        {"linkId": "t", "type": "string", "extension": [fp(INITIAL, "%top")]},
        extension=[fp(VARIABLE, "'root'", "top")])
    result = populate(pkg, CHART, now=NOW)
    assert answers(result) == {"g.1": ["Lee/g.1"], "g.2": ["1"], "t": ["root"]}
    assert [(e.link_id, e.expression) for e in result.errors] == [("o", "%fam")]  # out of scope → an error


def test_x_fhir_query_runs_against_a_fhir_source() -> None:
    obs = {"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "Patient/p1"},
           "valueQuantity": {"value": 7.4, "unit": "pH"}}
    server = MemoryFhirServer([PATIENT, obs])
    query = fp(VARIABLE, "Observation?subject=Patient/{{%patient.id}}&status=final", "obs",
               language="application/x-fhir-query")
    pkg = package({"linkId": "ph", "type": "decimal", "extension": [query, fp(INITIAL, "%obs.valueQuantity.value")]})
    with httpx.Client(base_url=server.base_url, transport=server.transport()) as client:
        result = populate(pkg, CHART, now=NOW, fhir=client)
    assert answers(result) == {"ph": [7.4]}
    assert any("subject=Patient%2Fp1" in str(r.url) or "subject=Patient/p1" in str(r.url) for r in server.requests)
    without = populate(pkg, CHART, now=NOW)
    assert [e.message for e in without.errors] == ["x-fhir-query needs a FHIR source"]


def test_candidates_are_options_not_answers_and_failures_are_recorded() -> None:
    pkg = package({"linkId": "c", "type": "choice", "extension": [fp(CANDIDATE, "%patient.name.given")]},
                  {"linkId": "bad", "type": "string", "extension": [fp(INITIAL, "%patient.name.(")]},
                  {"linkId": "lang", "type": "string", "extension": [fp(INITIAL, "1", language="text/x-unknown")]})
    result = populate(pkg, CHART, now=NOW)
    assert answers(result) == {}
    assert result.candidates == {"c": [{"valueCoding": {"code": "Ann"}}]}
    assert {e.link_id for e in result.errors} == {"bad", "lang"}
    issue = result.operation_outcome()["issue"][0]
    assert issue["severity"] == "error" and "Ann" not in json.dumps(result.operation_outcome())


# --- origin and resume ----------------------------------------------------------------------------------------------

def _resume_package() -> dict[str, Any]:
    return package(*({"linkId": k, "type": "string", "extension": [fp(INITIAL, "'cql'")]} for k in "amoe"),
                   {"linkId": "n", "type": "string", "extension": [fp(INITIAL, "{}")]},
                   {"linkId": "s", "type": "string", "extension": [fp(INITIAL, "'cql'")]})


def _answer(value: str, source: str, author: str | None = None) -> dict[str, Any]:
    return {"valueString": value, "extension": [origin_extension(source, author=author)]}  # type: ignore[arg-type]


def test_resume_keeps_manual_and_override_and_reruns_auto_answers() -> None:
    previous = {"resourceType": "QuestionnaireResponse", "status": "in-progress", "item": [
        {"linkId": "a", "answer": [_answer("stale", "auto-client")]},
        {"linkId": "m", "answer": [_answer("typed", "manual", "Practitioner/u1")]},
        {"linkId": "o", "answer": [_answer("mine", "override", "Practitioner/u1")]},
        {"linkId": "n", "answer": [_answer("payer", "auto-server")]}]}
    result = populate(_resume_package(), CHART, now=NOW, previous=previous, author="Practitioner/u2")
    got = answers(result)
    assert got == {"a": ["cql"], "m": ["typed"], "o": ["mine"], "e": ["cql"], "n": ["payer"], "s": ["cql"]}
    assert sources(result, "a") == ["auto-client"] and sources(result, "e") == ["auto-client"]
    assert sources(result, "m") == ["override"]  # CQL would have set it: manual → override, value kept
    assert sources(result, "o") == ["override"]
    assert sources(result, "n") == ["auto-server"]  # empty CQL result keeps the payer's prefill (spec-73)


def test_draft_prefill_is_auto_server_unless_client_data_replaces_it() -> None:
    pkg = _resume_package()
    draft = {"resourceType": "QuestionnaireResponse", "status": "in-progress",
             "subject": {"reference": "Patient/p1"},
             "item": [{"linkId": "s", "answer": [{"valueString": "payer"}]},
                      {"linkId": "n", "answer": [{"valueString": "payer"}]}]}
    pkg["entry"].append({"resource": draft})
    result = populate(pkg, CHART, now=NOW, version="2.0.1")
    assert answers(result)["s"] == ["cql"] and answers(result)["n"] == ["payer"]
    assert sources(result, "n") == ["auto"] and sources(result, "s") == ["auto"]  # 2.0.1 has only `auto`
    assert sources(populate(pkg, CHART, now=NOW), "n") == ["auto-server"]


# --- CQL wiring -------------------------------------------------------------------------------------------------------

def test_bare_define_with_one_cqf_library_and_defines_evaluated_once() -> None:
    pkg = copy.deepcopy(load_fixture("dtr", "packages", "dinner-static-package-bundle.testkit.json"))
    q = pkg["entry"][0]["resource"]
    q["item"][0]["item"][0]["extension"][0]["valueExpression"]["expression"] = "LastName"
    second = q["item"][0]["item"][1]["extension"][0]["valueExpression"]
    second["expression"] = '"DTRTest".LastName'
    result = populate(pkg, load_fixture("dtr", "patients", "pat015-bundle.testkit.json"), now=NOW)
    assert answers(result) == {"PBD.1": ["Oster"], "PBD.2": ["Oster"]}
    assert result.defines_evaluated == 2  # LastName once (memoised) + FirstLocationDescription
    q["extension"].append(dict(q["extension"][0], valueCanonical="http://example.org/Library/Other"))
    again = populate(pkg, load_fixture("dtr", "patients", "pat015-bundle.testkit.json"), now=NOW)
    assert [e.link_id for e in again.errors] == ["PBD.1"]


def test_unusable_input_raises() -> None:
    with pytest.raises(PopulateError):
        populate(package(), {"resourceType": "Patient"}, now=NOW)
    with pytest.raises(PopulateError):
        populate(package(), {"resourceType": "Bundle", "entry": []}, now=NOW)


# --- CLI -------------------------------------------------------------------------------------------------------------

def test_cli_populate_reads_a_questionnaire_package_parameters(tmp_path: Path) -> None:
    bundle = load_fixture("dtr", "packages", "rad-package-bundle.testkit.json")
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"resourceType": "Parameters",
                                  "parameter": [{"name": "packagebundle", "resource": bundle}]}))
    patient = fixture_path("dtr", "patients", "pat015-bundle.testkit.json")
    run = CliRunner().invoke(app, ["dtr", "populate", str(params), "--patient", str(patient), "--param",
                                   "device_request=DeviceRequest/devreqe0470", "--now", "2024-04-07T12:00:00Z",
                                   "--version", "2.0.1", "--json"])
    assert run.exit_code == 0, run.output
    qr = json.loads(run.stdout)
    assert qr["resourceType"] == "QuestionnaireResponse" and qr["status"] == "in-progress"
    assert '"valueCode": "auto"' in run.stdout
    bad = CliRunner().invoke(app, ["dtr", "populate", str(patient), "--patient", str(patient)])
    assert bad.exit_code != 0


def test_fhirpath_today_is_the_population_moment_not_the_clock() -> None:
    from fhir_pa.dtr import populate as run
    from fhir_pa.fhir.fhirpath_clock import fhirpath_now

    form = {"resourceType": "Questionnaire", "url": "http://example.org/Questionnaire/when", "status": "active",
            "item": [{"linkId": "d", "type": "date", "extension": [{
                "url": "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-initialExpression",
                "valueExpression": {"language": "text/fhirpath", "expression": "today()"}}]}]}
    chart = {"resourceType": "Bundle", "type": "collection",
             "entry": [{"resource": {"resourceType": "Patient", "id": "p"}}]}
    package = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": form}]}
    result = run(package, chart, launch={"patient": "Patient/p"}, now="2020-02-29T10:00:00Z")
    assert result.response["item"][0]["answer"][0]["valueDate"] == "2020-02-29"
    import fhirpathpy

    with fhirpath_now(None):
        assert str(fhirpathpy.evaluate({}, "today()")[0]) != "@2020-02-29", "outside a pin the real clock is back"

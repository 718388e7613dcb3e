"""Write the sandbox payer's DTR content (ELM, Libraries, ValueSets, Questionnaires) from the definitions below.

The content is ours and reproducible: the CQL text lives in ``cql/*.cql`` (written by hand), the ELM below is
that CQL compiled by hand into ELM JSON (no FHIRHelpers: FHIR primitives are read through ``.value``), and every
other file is generated here. Run from the repo root after changing anything:
``.venv/bin/python sandbox/fhir_pa_sandbox/data/dtr/make_content.py`` (a unit test fails when the files and this
script disagree).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

Json = dict[str, Any]
HERE = Path(__file__).resolve().parent
BASE = "http://fhir-pa.example/sandbox"
VERSION = "1.0.0"
#: The date every artifact carries; ``$questionnaire-package`` compares ``changedsince`` with it.
DATE = "2026-11-15T00:00:00Z"
S = "{urn:hl7-org:elm-types:r1}"
FH = "{http://hl7.org/fhir}"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
TREATMENT_CS = f"{BASE}/CodeSystem/respiratory-treatment"
SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition"
DTR = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition"
CQF_LIBRARY = "http://hl7.org/fhir/StructureDefinition/cqf-library"

# --- ELM builders -----------------------------------------------------------------------------------


def lit(value: str | int | bool) -> Json:
    kind = "Boolean" if isinstance(value, bool) else "Integer" if isinstance(value, int) else "String"
    return {"type": "Literal", "valueType": S + kind, "value": str(value).lower() if isinstance(value, bool)
            else str(value)}


def ref(name: str, library: str | None = None) -> Json:
    return {"type": "ExpressionRef", "name": name, **({"libraryName": library} if library else {})}


def prop(source: Json | str, path: str) -> Json:
    """Nested Property nodes for a dotted path; a str source is a query alias (``scope``)."""
    first, *rest = path.split(".")
    node: Json = ({"type": "Property", "path": first, "scope": source} if isinstance(source, str)
                  else {"type": "Property", "path": first, "source": source})
    for part in rest:
        node = {"type": "Property", "path": part, "source": node}
    return node


def query(alias: str, source: Json, *, where: Json | None = None, ret: Json | None = None) -> Json:
    node: Json = {"type": "Query", "source": [{"alias": alias, "expression": source}]}
    if where is not None:
        node["where"] = where
    if ret is not None:
        node["return"] = {"distinct": False, "expression": ret}
    return node


def retrieve(resource: str, valueset: str | None = None) -> Json:
    node: Json = {"type": "Retrieve", "dataType": FH + resource}
    if valueset:
        node.update(codeProperty="code", codeComparator="in", codes={"type": "ValueSetRef", "name": valueset})
    return node


def library(name: str, defines: dict[str, Json], *, includes: tuple[tuple[str, str], ...] = (),
            valuesets: dict[str, str] | None = None) -> Json:
    statements = [{"name": "Patient", "context": "Patient", "accessLevel": "Public",
                   "expression": {"type": "SingletonFrom", "operand": retrieve("Patient")}}]
    statements += [{"name": k, "context": "Patient", "accessLevel": "Public", "expression": v}
                   for k, v in defines.items()]
    body: Json = {
        "identifier": {"id": name, "version": VERSION},
        "schemaIdentifier": {"id": "urn:hl7-org:elm", "version": "r1"},
        "usings": {"def": [{"localIdentifier": "System", "uri": "urn:hl7-org:elm-types:r1"},
                           {"localIdentifier": "FHIR", "uri": "http://hl7.org/fhir", "version": "4.0.1"}]},
    }
    if includes:
        body["includes"] = {"def": [{"localIdentifier": alias, "path": path, "version": VERSION}
                                    for alias, path in includes]}
    if valuesets:
        body["valueSets"] = {"def": [{"name": n, "id": url, "version": VERSION, "accessLevel": "Public"}
                                     for n, url in valuesets.items()]}
    body["contexts"] = {"def": [{"name": "Patient"}]}
    body["statements"] = {"def": statements}
    return {"library": body}


def active(alias: str) -> Json:
    """``exists (A.clinicalStatus.coding S where S.code.value = 'active')``."""
    return {"type": "Exists", "operand": query("S", prop(alias, "clinicalStatus.coding"), where={
        "type": "Equal", "operand": [prop("S", "code.value"), lit("active")]})}


def first_coding_in(conditions: str, valueset: str) -> Json:
    """``First(flatten(Conditions C return (C.code.coding X where Code {..X..} in VS)))``."""
    code = {"type": "Instance", "classType": S + "Code", "element": [
        {"name": "system", "value": prop("X", "system.value")}, {"name": "code", "value": prop("X", "code.value")}]}
    inner = query("X", prop("C", "code.coding"),
                  where={"type": "InValueSet", "code": code,
                         "valueset": {"type": "ValueSetRef", "name": valueset}})
    return {"type": "First", "source": {"type": "Flatten", "operand": query("C", ref(conditions), ret=inner)}}


def topic_library(name: str, conditions: str, has: str, diagnosis: str, vs_name: str, vs_url: str) -> Json:
    return library(name, {
        "PatientName": ref("PatientName", "PatientInfo"),
        "PatientAge": ref("PatientAge", "PatientInfo"),
        conditions: query("C", retrieve("Condition", vs_name), where=active("C")),
        has: {"type": "Exists", "operand": ref(conditions)},
        diagnosis: first_coding_in(conditions, vs_name),
    }, includes=(("PatientInfo", "SandboxPatientInfo"),), valuesets={vs_name: vs_url})


def vs_url(name: str) -> str:
    return f"{BASE}/ValueSet/{name}"


ELM: dict[str, Json] = {
    "SandboxPatientInfo": library("SandboxPatientInfo", {
        "FirstName": prop({"type": "Indexer", "operand": [
            prop({"type": "First", "source": prop(ref("Patient"), "name")}, "given"), lit(0)]}, "value"),
        "LastName": prop({"type": "First", "source": prop(ref("Patient"), "name")}, "family.value"),
        "PatientName": {"type": "Combine", "source": {"type": "List", "element": [ref("FirstName"), ref("LastName")]},
                        "separator": lit(" ")},
        "PatientAge": {"type": "CalculateAge", "precision": "Year", "operand": prop(ref("Patient"), "birthDate.value")},
        "BirthDate": prop(ref("Patient"), "birthDate.value"),
    }),
    "HomeNebulizerPrepopulation": topic_library(
        "HomeNebulizerPrepopulation", "QualifyingConditions", "HasQualifyingDiagnosis", "PrimaryDiagnosis",
        "Nebulizer Qualifying Diagnoses", vs_url("nebulizer-diagnoses")),
    "CpapManagementPrepopulation": topic_library(
        "CpapManagementPrepopulation", "SleepApneaConditions", "HasSleepApneaDiagnosis", "SleepApneaDiagnosis",
        "Sleep Apnea Diagnoses", vs_url("sleep-apnea-diagnoses")),
}

# --- ValueSets --------------------------------------------------------------------------------------

VALUESETS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "nebulizer-diagnoses": ("Diagnoses qualifying for a home nebulizer", ICD10, [
        ("J44.9", "Chronic obstructive pulmonary disease, unspecified"),
        ("J44.1", "Chronic obstructive pulmonary disease with (acute) exacerbation"),
        ("J45.50", "Severe persistent asthma, uncomplicated"),
        ("J47.9", "Bronchiectasis, uncomplicated"),
        ("E84.0", "Cystic fibrosis with pulmonary manifestations"),
    ]),
    "sleep-apnea-diagnoses": ("Sleep apnea diagnoses", ICD10, [
        ("G47.33", "Obstructive sleep apnea (adult) (pediatric)"),
        ("G47.30", "Sleep apnea, unspecified"),
        ("G47.31", "Primary central sleep apnea"),
    ]),
    "respiratory-treatments": ("Respiratory treatments tried before a nebulizer", TREATMENT_CS, [
        ("mdi", "Metered-dose inhaler"),
        ("mdi-spacer", "Metered-dose inhaler with spacer"),
        ("dpi", "Dry powder inhaler"),
        ("oral-steroid", "Oral corticosteroids"),
        ("none", "None tried"),
    ]),
}


def valueset(name: str) -> Json:
    title, system, concepts = VALUESETS[name]
    return {
        "resourceType": "ValueSet", "id": name, "url": vs_url(name), "version": VERSION, "name": name.title()
        .replace("-", ""), "title": title, "status": "active", "experimental": True, "date": DATE,
        "publisher": "fhir-pa sandbox payer",
        "compose": {"include": [{"system": system, "concept": [{"code": c, "display": d} for c, d in concepts]}]},
        "expansion": {"identifier": f"{vs_url(name)}/expansion/{VERSION}", "timestamp": DATE, "total": len(concepts),
                      "contains": [{"system": system, "code": c, "display": d} for c, d in concepts]},
    }


# --- Libraries --------------------------------------------------------------------------------------

LIBRARY_VALUESETS = {"HomeNebulizerPrepopulation": "nebulizer-diagnoses",
                     "CpapManagementPrepopulation": "sleep-apnea-diagnoses"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def elm_text(name: str) -> str:
    return json.dumps(ELM[name], indent=1) + "\n"


def fhir_library(name: str) -> Json:
    related = []
    requirements: list[Json] = [{"type": "Patient"}]
    if name != "SandboxPatientInfo":
        related.append({"type": "depends-on", "resource": f"{BASE}/Library/SandboxPatientInfo|{VERSION}"})
        vs = f"{vs_url(LIBRARY_VALUESETS[name])}|{VERSION}"
        related.append({"type": "depends-on", "resource": vs})
        requirements.append({"type": "Condition", "codeFilter": [{"path": "code", "valueSet": vs}]})
    out: Json = {
        "resourceType": "Library", "id": name, "url": f"{BASE}/Library/{name}", "version": VERSION, "name": name,
        "status": "active", "experimental": True, "date": DATE, "publisher": "fhir-pa sandbox payer",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/library-type",
                             "code": "logic-library"}]},
    }
    if related:
        out["relatedArtifact"] = related
    out["dataRequirement"] = requirements
    out["content"] = [{"contentType": "text/cql", "data": b64((HERE / "cql" / f"{name}.cql").read_text("utf-8"))},
                      {"contentType": "application/elm+json", "data": b64(elm_text(name))}]
    return out


# --- Questionnaires ---------------------------------------------------------------------------------


def cql(library_name: str, define: str) -> Json:
    return {"url": f"{SDC}/sdc-questionnaire-initialExpression",
            "valueExpression": {"language": "text/cql-identifier", "expression": f'"{library_name}".{define}'}}


def item(link_id: str, text: str, kind: str, *, required: bool = False, prefill: Json | None = None,
         **more: Any) -> Json:
    out: Json = {"linkId": link_id, "text": text, "type": kind}
    if prefill is not None:
        out["extension"] = [prefill]
    if required:
        out["required"] = True
    out.update(more)
    return out


def patient_group(lib: str) -> Json:
    return item("patient", "Patient", "group", item=[
        item("patient-name", "Patient name", "string", required=True, prefill=cql(lib, "PatientName")),
        item("patient-age", "Age (years)", "integer", prefill=cql(lib, "PatientAge")),
    ])


def questionnaire(form_id: str, title: str, lib: str | None, items: list[Json], *, profile: str,
                  extra: list[Json] | None = None) -> Json:
    extensions = [{"url": CQF_LIBRARY, "valueCanonical": f"{BASE}/Library/{lib}|{VERSION}"}] if lib else []
    out: Json = {"resourceType": "Questionnaire", "id": form_id, "meta": {"profile": [f"{DTR}/{profile}"]}}
    if extensions or extra:
        out["extension"] = extensions + (extra or [])
    out.update({"url": f"{BASE}/Questionnaire/{form_id}", "version": VERSION, "name": title.replace(" ", ""),
                "title": title, "status": "active", "experimental": True, "subjectType": ["Patient"], "date": DATE,
                "publisher": "fhir-pa sandbox payer"})
    if items:
        out["item"] = items
    return out


NEB = "HomeNebulizerPrepopulation"
CPAP = "CpapManagementPrepopulation"
MDI = {"system": TREATMENT_CS, "code": "mdi", "display": "Metered-dose inhaler"}


def questionnaires() -> dict[str, Json]:
    nebulizer = questionnaire("home-nebulizer", "Home Nebulizer", NEB, [
        patient_group(NEB),
        item("clinical", "Clinical indication", "group", item=[
            item("diagnosis", "Qualifying diagnosis", "choice", required=True, prefill=cql(NEB, "PrimaryDiagnosis"),
                 answerValueSet=f"{vs_url('nebulizer-diagnoses')}|{VERSION}"),
            item("diagnosis-on-chart", "A qualifying diagnosis is on the problem list", "boolean",
                 prefill=cql(NEB, "HasQualifyingDiagnosis"), readOnly=True),
            item("last-exacerbation", "Date of the last exacerbation", "date", required=True),
            item("prior-treatments", "Treatments tried before the nebulizer", "choice", required=True, repeats=True,
                 answerValueSet=f"{vs_url('respiratory-treatments')}|{VERSION}"),
            item("inhaler-failure", "Why was the metered-dose inhaler not sufficient?", "text", required=True,
                 enableWhen=[{"question": "prior-treatments", "operator": "=", "answerCoding": MDI}]),
        ]),
    ], profile="dtr-std-questionnaire")
    cpap = questionnaire("cpap-management", "CPAP Management", CPAP, [
        patient_group(CPAP),
        item("sleep-study", "Sleep study", "group", item=[
            item("sleep-apnea-diagnosis", "Sleep apnea diagnosis", "choice", required=True,
                 prefill=cql(CPAP, "SleepApneaDiagnosis"),
                 answerValueSet=f"{vs_url('sleep-apnea-diagnoses')}|{VERSION}"),
            item("diagnosis-on-chart", "A sleep apnea diagnosis is on the problem list", "boolean",
                 prefill=cql(CPAP, "HasSleepApneaDiagnosis"), readOnly=True),
            item("sleep-study-date", "Date of the sleep study", "date", required=True),
            item("sleep-study-type", "Type of sleep study", "choice", required=True, answerOption=[
                {"valueCoding": {"system": f"{BASE}/CodeSystem/sleep-study-type", "code": "psg",
                                 "display": "In-lab polysomnography"}},
                {"valueCoding": {"system": f"{BASE}/CodeSystem/sleep-study-type", "code": "hsat",
                                 "display": "Home sleep apnea test"}}]),
            item("ahi", "Apnea-hypopnea index (events per hour)", "decimal", required=True, extension=[
                {"url": "http://hl7.org/fhir/StructureDefinition/questionnaire-unit",
                 "valueCoding": {"system": "http://unitsofmeasure.org", "code": "/h", "display": "per hour"}}]),
        ]),
        item("face-to-face", "Face-to-face evaluation", "group", item=[
            item("face-to-face-done", "Face-to-face clinical evaluation before the sleep study", "boolean",
                 required=True),
            item("face-to-face-date", "Date of the face-to-face evaluation", "date", required=True,
                 enableWhen=[{"question": "face-to-face-done", "operator": "=", "answerBoolean": True}]),
        ]),
    ], profile="dtr-std-questionnaire")
    # The adaptive shell: no items; $next-question at the questionnaireAdaptive URL asks them one round at a time.
    # The sandbox fills the URL with its own FHIR base when it serves the package.
    adaptive = questionnaire("home-oxygen-adaptive", "Home Oxygen Adaptive", None, [],
                             profile="dtr-questionnaire-adapt-search",
                             extra=[{"url": f"{SDC}/sdc-questionnaire-questionnaireAdaptive",
                                     "valueUrl": "{fhir-base}"}])
    return {q["id"]: q for q in (nebulizer, cpap, adaptive)}


def write(path: Path, data: Json | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=1, ensure_ascii=False) + "\n",
                    encoding="utf-8")


def files() -> dict[str, str]:
    """Every generated file (relative path → text); the unit test compares them with what is on disk."""
    out = {f"elm/{name}.json": elm_text(name) for name in ELM}
    out.update({f"libraries/{name}.json": json.dumps(fhir_library(name), indent=1) + "\n" for name in ELM})
    out.update({f"valuesets/{name}.json": json.dumps(valueset(name), indent=1) + "\n" for name in VALUESETS})
    out.update({f"questionnaires/{qid}.json": json.dumps(q, indent=1) + "\n" for qid, q in questionnaires().items()})
    return out


def main() -> None:
    for relative, text in files().items():
        write(HERE / relative, text)


if __name__ == "__main__":
    main()

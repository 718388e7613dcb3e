"""Writes bound-codes-4xx/BoundCodes4xx.json (hand-written ELM returning raw ``code`` elements) and its bundle.

Each define returns one ``code`` element, so the reference engine's output shows how each FHIR model info
(4.0.0 and 4.0.1 differ) labels it: after the binding (``AdministrativeGender``), after the ValueSet
(4.0.0's ``RequestStatus``) or plain ``code``. The cases cover each labelling rule and exception of
``fhir_pa.dtr.elm.tools.make_bindings``. Run from the repo root:
``.venv/bin/python -m tests.data.dtr.make_bound_codes_elm``; then refresh the oracle outputs (README.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FHIR = "{http://hl7.org/fhir}"

#: Resources of the bundle; every code element holds ``"x"`` (labels do not depend on the value).
RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "p", "gender": "female", "language": "en",
     "contact": [{"gender": "male"}], "name": [{"use": "official"}], "telecom": [{"system": "phone"}],
     "link": [{"type": "seealso"}]},
    {"resourceType": "Observation", "id": "o", "status": "final", "valueQuantity": {"comparator": "<"}},
    {"resourceType": "DeviceRequest", "id": "dr", "status": "active", "intent": "order", "priority": "routine"},
    {"resourceType": "ServiceRequest", "id": "sr", "status": "active", "intent": "order", "priority": "urgent"},
    {"resourceType": "MedicationRequest", "id": "mr", "status": "active", "intent": "order", "priority": "stat",
     "dosageInstruction": [{"timing": {"repeat": {"dayOfWeek": ["mon"], "when": ["MORN"], "periodUnit": "d"}}}]},
    {"resourceType": "Medication", "id": "m", "status": "active"},
    {"resourceType": "MedicationStatement", "id": "ms", "status": "active"},
    {"resourceType": "MedicationDispense", "id": "md", "status": "completed"},
    {"resourceType": "Consent", "id": "c", "status": "active"},
    {"resourceType": "Claim", "id": "cl", "status": "active", "use": "preauthorization", "total": {"currency": "USD"}},
    {"resourceType": "ClaimResponse", "id": "cr", "status": "active", "outcome": "complete"},
    {"resourceType": "CoverageEligibilityResponse", "id": "cer", "outcome": "complete"},
    {"resourceType": "Coverage", "id": "cov", "status": "active"},
    {"resourceType": "CarePlan", "id": "cp", "status": "active"},
    {"resourceType": "Procedure", "id": "pr", "status": "completed"},
    {"resourceType": "Task", "id": "t", "status": "requested", "priority": "routine"},
    {"resourceType": "Composition", "id": "comp", "status": "final", "confidentiality": "N"},
    {"resourceType": "DocumentReference", "id": "doc", "status": "current",
     "content": [{"attachment": {"contentType": "application/pdf"}}]},
    {"resourceType": "MessageDefinition", "id": "msg", "responseRequired": "always"},
    {"resourceType": "MolecularSequence", "id": "seq", "type": "dna"},
    {"resourceType": "VerificationResult", "id": "vr", "status": "validated"},
    {"resourceType": "Questionnaire", "id": "q", "status": "active", "subjectType": ["Patient"],
     "item": [{"linkId": "g", "type": "group", "item": [{"linkId": "b", "type": "boolean"}]}]},
    {"resourceType": "ResearchElementDefinition", "id": "red", "status": "active", "variableType": "dichotomous"},
    {"resourceType": "Library", "id": "lib", "status": "active", "parameter": [{"use": "in", "type": "string"}]},
    {"resourceType": "ActivityDefinition", "id": "ad", "status": "active",
     "dynamicValue": [{"path": "status", "expression": {"language": "text/cql"}}]},
]

#: Define name (the element reached) → property chain from the resource; ``*`` marks a list (take First).
CASES: dict[str, list[str]] = {
    "Patient.gender": ["gender"],
    "Patient.language": ["language"],  # a preferred binding: plain code in both models
    "Patient.contact.gender": ["contact*", "gender"],
    "Patient.name.use": ["name*", "use"],
    "Patient.telecom.system": ["telecom*", "system"],
    "Patient.link.type": ["link*", "type"],
    "Observation.status": ["status"],
    "Observation.valueQuantity.comparator": ["value", "comparator"],
    "DeviceRequest.status": ["status"],
    "DeviceRequest.intent": ["intent"],
    "DeviceRequest.priority": ["priority"],
    "ServiceRequest.status": ["status"],
    "ServiceRequest.intent": ["intent"],
    "ServiceRequest.priority": ["priority"],
    "MedicationRequest.status": ["status"],
    "MedicationRequest.intent": ["intent"],
    "MedicationRequest.priority": ["priority"],
    "MedicationRequest.dosageInstruction.timing.repeat.dayOfWeek": ["dosageInstruction*", "timing", "repeat",
                                                                   "dayOfWeek"],
    "MedicationRequest.dosageInstruction.timing.repeat.when": ["dosageInstruction*", "timing", "repeat", "when"],
    "MedicationRequest.dosageInstruction.timing.repeat.periodUnit": ["dosageInstruction*", "timing", "repeat",
                                                                    "periodUnit"],
    "Medication.status": ["status"],
    "MedicationStatement.status": ["status"],
    "MedicationDispense.status": ["status"],
    "Consent.status": ["status"],
    "Claim.status": ["status"],
    "Claim.use": ["use"],
    "Claim.total.currency": ["total", "currency"],
    "ClaimResponse.status": ["status"],
    "ClaimResponse.outcome": ["outcome"],
    "CoverageEligibilityResponse.outcome": ["outcome"],
    "Coverage.status": ["status"],
    "CarePlan.status": ["status"],
    "Procedure.status": ["status"],
    "Task.status": ["status"],
    "Task.priority": ["priority"],
    "Composition.status": ["status"],
    "Composition.confidentiality": ["confidentiality"],
    "DocumentReference.status": ["status"],
    "DocumentReference.content.attachment.contentType": ["content*", "attachment", "contentType"],
    "MessageDefinition.responseRequired": ["responseRequired"],
    "MolecularSequence.type": ["type"],
    "VerificationResult.status": ["status"],
    "Questionnaire.status": ["status"],
    "Questionnaire.subjectType": ["subjectType"],
    "Questionnaire.item.item.type": ["item*", "item*", "type"],
    "ResearchElementDefinition.variableType": ["variableType"],
    "Library.parameter.use": ["parameter*", "use"],
    "ActivityDefinition.dynamicValue.expression.language": ["dynamicValue*", "expression", "language"],
}


def _define(path: str, chain: list[str]) -> dict[str, Any]:
    expr: dict[str, Any] = {"type": "SingletonFrom",
                            "operand": {"type": "Retrieve", "dataType": FHIR + path.split(".")[0]}}
    for step in chain:
        expr = {"type": "Property", "path": step.rstrip("*"), "source": expr}
        if step.endswith("*"):
            expr = {"type": "First", "source": expr}
    return expr


def library(version: str) -> dict[str, Any]:
    gender = _define("Patient.gender", ["gender"])
    defs = {name: _define(name, chain) for name, chain in CASES.items()}
    defs["InTuple"] = {"type": "Tuple", "element": [{"name": "g", "value": gender}]}
    defs["InList"] = {"type": "List", "element": [gender, defs["Patient.contact.gender"]]}
    return {"library": {
        "identifier": {"id": "BoundCodes" + version.replace(".", ""), "version": "1"},
        "schemaIdentifier": {"id": "urn:hl7-org:elm", "version": "r1"},
        "usings": {"def": [{"localIdentifier": "System", "uri": "urn:hl7-org:elm-types:r1"},
                           {"localIdentifier": "FHIR", "uri": "http://hl7.org/fhir", "version": version}]},
        "contexts": {"def": [{"name": "Patient"}]},
        "statements": {"def": [{"name": k, "context": "Patient", "expression": v} for k, v in defs.items()]},
    }}


def main() -> None:
    for version in ("4.0.0", "4.0.1"):
        out = HERE / f"bound-codes-{version.replace('.', '')}"
        out.mkdir(exist_ok=True)
        (out / f"BoundCodes{version.replace('.', '')}.json").write_text(
            json.dumps(library(version), indent=1) + "\n", encoding="utf-8")
    doc = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in RESOURCES]}
    (HERE / "bound-codes-bundle.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

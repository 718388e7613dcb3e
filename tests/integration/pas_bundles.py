"""Small, valid PAS 2.2.1 request Bundles for the sandbox tests (modelled on Inferno's v2.2.1 initial payload).

Made-up people and organizations; CPT/HCPCS service codes; ``urn:uuid`` v4 fullUrls as Inferno requires.
Each call mints fresh identifiers unless given, so every Bundle is a new request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
PAS_SD = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition"
X12 = "https://codesystem.x12.org/005010"

Json = dict[str, Any]


@dataclass(frozen=True)
class Service:
    code: str
    system: str = CPT
    service_date: str | None = "2026-12-01"
    quantity: int = 1


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _concept(system: str, code: str) -> Json:
    return {"coding": [{"system": system, "code": code}]}


def _item(sequence: int, service: Service) -> Json:
    item: Json = {
        "extension": [
            {"url": f"{PAS_SD}/extension-serviceItemRequestType",
             "valueCodeableConcept": _concept(f"{X12}/1525", "HS")},
            {"url": f"{PAS_SD}/extension-certificationType",
             "valueCodeableConcept": _concept(f"{X12}/1322", "I")},
        ],
        "sequence": sequence,
        "category": _concept(f"{X12}/1365", "1"),
        "productOrService": _concept(service.system, service.code),
        "locationCodeableConcept": _concept(
            "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set", "11"),
        "quantity": {"value": service.quantity, "unit": "unit"},
    }
    if service.service_date:
        item["servicedDate"] = service.service_date
    return item


def service(spec: Service | str) -> Service:
    if isinstance(spec, Service):
        return spec
    return Service(spec, HCPCS if spec[:1].isalpha() else CPT)


def request_bundle(*services: Service | str, bundle_value: str | None = None,
                   claim_value: str | None = None) -> Json:
    """A PAS request Bundle with one Claim item per service (a bare code picks CPT or HCPCS by its shape)."""
    claim_url, patient_url, insurer_url, requestor_url, coverage_url = (_urn() for _ in range(5))
    patient: Json = {
        "resourceType": "Patient",
        "meta": {"profile": [f"{PAS_SD}/profile-beneficiary"]},
        "identifier": [{"type": _concept("http://terminology.hl7.org/CodeSystem/v2-0203", "MB"),
                        "system": "http://example.org/member-id", "value": "M000123"}],
        "name": [{"family": "Testperson", "given": ["Pat"]}],
        "gender": "female",
        "birthDate": "1970-01-01",
    }
    insurer: Json = {
        "resourceType": "Organization",
        "meta": {"profile": [f"{PAS_SD}/profile-insurer"]},
        "active": True,
        "type": [_concept(f"{X12}/98", "PR")],
        "name": "Sandbox Health Plan",
    }
    requestor: Json = {
        "resourceType": "Organization",
        "meta": {"profile": [f"{PAS_SD}/profile-requestor"]},
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1467586115"}],
        "active": True,
        "type": [_concept(f"{X12}/98", "X3")],
        "name": "Test Clinic",
    }
    coverage: Json = {
        "resourceType": "Coverage",
        "meta": {"profile": [f"{PAS_SD}/profile-coverage"]},
        "identifier": [{"type": _concept("http://terminology.hl7.org/CodeSystem/v2-0203", "MB"),
                        "system": "http://example.org/member-id", "value": "M000123"}],
        "status": "active",
        "subscriberId": "M000123",
        "beneficiary": {"reference": patient_url},
        "subscriber": {"reference": patient_url},
        "relationship": {"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "self"},
            {"system": f"{X12}/1069", "code": "18"}]},
        "payor": [{"reference": insurer_url}],
    }
    claim: Json = {
        "resourceType": "Claim",
        "meta": {"profile": [f"{PAS_SD}/profile-claim"]},
        "identifier": [{"system": "urn:trnorg:sandbox-tests", "value": claim_value or uuid.uuid4().hex}],
        "status": "active",
        "type": _concept("http://terminology.hl7.org/CodeSystem/claim-type", "professional"),
        "use": "preauthorization",
        "patient": {"reference": patient_url},
        "created": "2026-11-20T10:00:00Z",
        "insurer": {"reference": insurer_url},
        "provider": {"reference": requestor_url},
        "priority": _concept("http://terminology.hl7.org/CodeSystem/processpriority", "normal"),
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": coverage_url}}],
        "item": [_item(n, service(spec)) for n, spec in enumerate(services or ("72148",), start=1)],
    }
    entries = [(claim_url, claim), (patient_url, patient), (insurer_url, insurer), (requestor_url, requestor),
               (coverage_url, coverage)]
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [f"{PAS_SD}/profile-pas-request-bundle"]},
        "identifier": {"system": "urn:sandbox-tests:submitter-transaction",
                       "value": bundle_value or str(uuid.uuid4())},
        "type": "collection",
        "timestamp": "2026-11-20T10:00:00Z",
        "entry": [{"fullUrl": url, "resource": resource} for url, resource in entries],
    }


def bundle_key(bundle: Json) -> str:
    """The request identifier as the sandbox stats key it: ``system|value``."""
    identifier = bundle["identifier"]
    return f"{identifier['system']}|{identifier['value']}"

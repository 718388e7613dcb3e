"""Build a PAS 2.2.1 request Bundle from a :class:`~fhir_pa.pas.order.PriorAuthOrder`.

The Bundle holds the Claim first and every resource the Claim reaches, each exactly once, under fresh
``urn:uuid`` (v4) fullUrls that the references point to. Item sequences follow the order's service lines
(their explicit ``sequence``, else 1, 2, ...) and are the trace key for the whole life of the request:
responses, updates and cancels match on them, so they never change once sent.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fhir_pa.config import Sender
from fhir_pa.pas import codes
from fhir_pa.pas.order import Address, Attachment, Documentation, Organization, Person, PriorAuthOrder, ServiceLine

Json = dict[str, Any]


@dataclass(frozen=True)
class PasRequest:
    """A built request: the Bundle plus the identifiers that correlate it with its response."""

    bundle: Json
    bundle_identifier: str
    claim_identifier: str
    claim_full_url: str
    item_sequences: tuple[int, ...]
    order_id: str

    @property
    def claim(self) -> Json:
        claim: Json = self.bundle["entry"][0]["resource"]
        return claim


@dataclass
class _Entries:
    """Collects Bundle entries, one per real-world thing, keyed so a thing is never added twice."""

    new_id: Callable[[], str]
    entries: list[Json] = field(default_factory=list)
    by_key: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, resource: Json) -> str:
        if key in self.by_key:
            return self.by_key[key]
        full_url = f"urn:uuid:{self.new_id()}"
        self.by_key[key] = full_url
        self.entries.append({"fullUrl": full_url, "resource": resource})
        return full_url


def _ref(full_url: str) -> Json:
    return {"reference": full_url}


def _coding(system: str, code: str, display: str | None = None) -> Json:
    coding: Json = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _concept(system: str, code: str, display: str | None = None) -> Json:
    return {"coding": [_coding(system, code, display)]}


def _address(address: Address) -> Json:
    out: Json = {}
    if address.lines:
        out["line"] = list(address.lines)
    for key, value in (("city", address.city), ("state", address.state), ("postalCode", address.postal_code),
                       ("country", address.country)):
        if value:
            out[key] = value
    return out


def _meta(profile: str) -> Json:
    return {"profile": [profile]}


def _patient(person: Person, profile: str, extra_identifier: Json | None = None) -> Json:
    identifiers: list[Json] = []
    if person.mrn:
        identifiers.append({"type": _concept(codes.V2_0203, "MR"), "system": person.mrn_system,
                            "value": person.mrn})
    if extra_identifier:
        identifiers.append(extra_identifier)
    patient: Json = {
        "resourceType": "Patient",
        "meta": _meta(profile),
        "identifier": identifiers,
        "name": [{"family": person.family, "given": list(person.given)}],
        "gender": person.gender,
        "birthDate": person.birth_date.isoformat(),
    }
    if person.phone:
        patient["telecom"] = [{"system": "phone", "value": person.phone}]
    if person.address:
        patient["address"] = [_address(person.address)]
    return patient


def _organization(org: Organization, profile: str, x12_type: str) -> Json:
    identifiers: list[Json] = []
    if org.npi:
        identifiers.append({"system": codes.NPI, "value": org.npi})
    if org.tin:
        identifiers.append({"system": codes.TIN, "value": org.tin})
    if org.payer_id:
        identifiers.append({"type": _concept(codes.C4BB_IDENTIFIER_TYPE, "payerid"),
                            "system": "urn:fhir-pa:payer-id", "value": org.payer_id})
    resource: Json = {
        "resourceType": "Organization",
        "meta": _meta(profile),
        "identifier": identifiers,
        "active": True,
        "type": [_concept(codes.X12_ENTITY_TYPE, x12_type)],
        "name": org.name,
    }
    if org.phone:
        resource["telecom"] = [{"system": "phone", "value": org.phone}]
    if org.address:
        resource["address"] = [_address(org.address)]
    return resource


def _product(line: ServiceLine) -> Json:
    system = codes.CPT if line.code_system == "cpt" else codes.HCPCS
    return _concept(system, line.code, line.display)


def _quantity(line: ServiceLine) -> Json | None:
    if line.quantity is None:
        return None
    quantity: Json = {"value": float(line.quantity) if line.quantity % 1 else int(line.quantity)}
    if line.unit:
        quantity["unit"] = line.unit
    return quantity


def _serviced(line: ServiceLine) -> Json:
    if line.service_date is None:
        return {}
    if line.service_end is not None and line.service_end != line.service_date:
        return {"servicedPeriod": {"start": line.service_date.isoformat(), "end": line.service_end.isoformat()}}
    return {"servicedDate": line.service_date.isoformat()}


def _coverage_information(extensions: list[dict[str, Any]], coverage_url: str) -> list[Json]:
    """CRD's coverage information, echoed on the PAS order; its coverage now names the Bundle's Coverage."""
    out: list[Json] = []
    for extension in extensions:
        copied = copy.deepcopy(extension)
        copied["extension"] = [{"url": "coverage", "valueReference": _ref(coverage_url)}
                               if isinstance(p, dict) and p.get("url") == "coverage" else p
                               for p in copied.get("extension", [])]
        out.append(copied)
    return out


def _service_request(line: ServiceLine, patient_url: str, role_url: str, coverage_url: str) -> Json:
    request: Json = {
        "resourceType": "ServiceRequest",
        "meta": _meta(codes.SERVICE_REQUEST),
        "status": "active",
        "intent": "order",
        "code": _product(line),
        "subject": _ref(patient_url),
        "requester": _ref(role_url),
        "insurance": [_ref(coverage_url)],
    }
    if line.coverage_information:
        request["extension"] = _coverage_information(line.coverage_information, coverage_url)
        request = {"resourceType": "ServiceRequest", "meta": request["meta"], "extension": request["extension"],
                   **{k: v for k, v in request.items() if k not in ("resourceType", "meta", "extension")}}
    quantity = _quantity(line)
    if quantity:
        request["quantityQuantity"] = quantity
    serviced = _serviced(line)
    if "servicedDate" in serviced:
        request["occurrenceDateTime"] = serviced["servicedDate"]
    elif "servicedPeriod" in serviced:
        request["occurrencePeriod"] = serviced["servicedPeriod"]
    return request


def _document(attachment: Attachment, patient_url: str, author_url: str, now: str) -> Json:
    content: Json = {"contentType": attachment.content_type, "data": attachment.data}
    if attachment.title:
        content["title"] = attachment.title
    document: Json = {
        "resourceType": "DocumentReference",
        "meta": _meta(codes.DOCUMENT_REFERENCE),
        "status": "current",
        "type": _concept(codes.LOINC, attachment.loinc),
        "category": [_concept(codes.USCORE_DOC_CATEGORY, "clinical-note")],
        "subject": _ref(patient_url),
        "date": now,
        "author": [_ref(author_url)],
        "content": [{"attachment": content}],
    }
    if attachment.description:
        document["description"] = attachment.description
    return document


_ORDER_TYPES = frozenset({"ServiceRequest", "DeviceRequest", "MedicationRequest", "NutritionOrder"})
_QR_CONTEXT = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-context"


def _relink(node: Any, mapping: Callable[[str], str | None]) -> None:
    """Point every reference under ``node`` (contained skipped) at a Bundle entry, or drop it (keeping display)."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and not ref.startswith("#"):
            target = mapping(ref)
            if target is None:
                del node["reference"]
                node.pop("type", None)
            else:
                node["reference"] = target
        for key, value in node.items():
            if key not in ("contained", "text"):
                _relink(value, mapping)
    elif isinstance(node, list):
        for value in node:
            _relink(value, mapping)


def _documentation(doc: Documentation, n: int, entries: _Entries, known: dict[str, str],
                   request_urls: list[str]) -> str:
    """Add a DTR QR Bundle; every reference inside it must resolve in the PAS Bundle (spec-13, recursively).

    The response's patient, coverage, orders and people become the PAS entries for the same things; resources it
    answers with (answerReference targets) move up into the PAS Bundle, each once, so the nested Bundle keeps
    only the QuestionnaireResponse. References with no counterpart keep their display only.
    """
    nested = copy.deepcopy(doc.bundle)
    inner = [e for e in nested.get("entry", []) if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    local: dict[str, str] = {}
    for m, entry in enumerate(inner[1:], start=1):
        resource = entry["resource"]
        same = f"res:{resource.get('resourceType')}/{resource['id']}" if resource.get("id") else f"dtr:{n}:{m}"
        url = entries.add(same, resource)  # a resource two forms answer with is still sent once (spec-14)
        if isinstance(entry.get("fullUrl"), str):
            local[entry["fullUrl"]] = url
        if resource.get("id"):
            local[f"{resource.get('resourceType')}/{resource['id']}"] = url

    def mapping(reference: str) -> str | None:
        if reference in local:
            return local[reference]
        key = "/".join(reference.split("/_history/")[0].split("/")[-2:])
        kind = key.split("/")[0]
        return local.get(key) or known.get(kind) or (request_urls[0] if kind in _ORDER_TYPES and request_urls
                                                     else None)

    for entry in inner[1:]:
        _relink(entry["resource"], mapping)
    qr = inner[0]
    _relink(qr["resource"], mapping)
    extensions = qr["resource"].get("extension", [])
    if any(isinstance(e, dict) and e.get("url") == _QR_CONTEXT and isinstance(e.get("valueReference"), dict)
           and e["valueReference"].get("reference") in request_urls for e in extensions):
        others = [e for e in extensions if not (isinstance(e, dict) and e.get("url") == _QR_CONTEXT and isinstance(
            e.get("valueReference"), dict) and e["valueReference"].get("reference") in request_urls)]
        qr["resource"]["extension"] = [*others, *({"url": _QR_CONTEXT, "valueReference": _ref(url)}
                                                  for url in request_urls)]
    nested["entry"] = [qr]
    return entries.add(f"dtr:{n}", nested)


def _transmission(sender: Sender) -> Json:
    parts = [("applicationSenderCode", sender.application_sender_code),
             ("applicationReceiverCode", sender.application_receiver_code),
             ("interchangeSenderID", sender.interchange_sender_id),
             ("interchangeReceiverID", sender.interchange_receiver_id)]
    return {"url": codes.EXT_TRANSMISSION_IDS,
            "extension": [{"url": name, "valueString": value} for name, value in parts if value]}


def _timestamp(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def build_request_bundle(order: PriorAuthOrder, *, sender: Sender | None = None, now: datetime | None = None,
                         new_id: Callable[[], str] | None = None) -> PasRequest:
    """Build the PAS request Bundle for ``order``.

    ``new_id`` makes identifiers reproducible in tests; by default every call mints fresh UUIDv4 values, so
    two builds of the same order are two distinct requests. Resending a request must therefore reuse the
    bytes of the first build (the ledger keeps them), never rebuild.
    """
    sender = sender or Sender()
    make_id = new_id or (lambda: str(uuid.uuid4()))
    moment = now or datetime.now(UTC)
    stamp = _timestamp(moment)
    entries = _Entries(make_id)
    claim_url = entries.add("claim", {})  # placeholder: the Claim must be entry[0]; filled in at the end

    patient_url = entries.add("patient", _patient(
        order.patient, codes.BENEFICIARY,
        {"type": _concept(codes.V2_0203, "MB"), "system": order.coverage.member_id_system,
         "value": order.coverage.member_id}))
    insurer_url = entries.add("insurer", _organization(order.insurer, codes.INSURER, "PR"))
    requestor_url = entries.add("requestor", _organization(order.requester.organization, codes.REQUESTOR, "X3"))

    clinician = order.requester.practitioner
    practitioner: Json = {
        "resourceType": "Practitioner",
        "meta": _meta(codes.PRACTITIONER),
        "identifier": [{"system": codes.NPI, "value": clinician.npi}],
        "name": [{"family": clinician.family, "given": list(clinician.given)}],
    }
    if clinician.phone:
        practitioner["telecom"] = [{"system": "phone", "value": clinician.phone}]
    practitioner_url = entries.add("practitioner", practitioner)
    role_url = entries.add("role", {
        "resourceType": "PractitionerRole",
        "meta": _meta(codes.PRACTITIONER_ROLE),
        "practitioner": _ref(practitioner_url),
        "organization": _ref(requestor_url),
    })

    coverage_in = order.coverage
    relationship = coverage_in.relationship
    coverage: Json = {
        "resourceType": "Coverage",
        "meta": _meta(codes.COVERAGE),
        "identifier": [{"type": _concept(codes.V2_0203, "MB"), "system": coverage_in.member_id_system,
                        "value": coverage_in.member_id}],
        "status": "active",
        "subscriberId": coverage_in.subscriber_id or coverage_in.member_id,
        "beneficiary": _ref(patient_url),
        "relationship": {"coding": [_coding(codes.SUBSCRIBER_RELATIONSHIP, relationship),
                                    _coding(codes.X12_RELATIONSHIP, codes.X12_RELATIONSHIP_CODES[relationship])]},
        "payor": [_ref(insurer_url)],
    }
    if coverage_in.subscriber is not None and relationship != "self":
        coverage["subscriber"] = _ref(entries.add("subscriber", _patient(coverage_in.subscriber, codes.SUBSCRIBER)))
    else:
        coverage["subscriber"] = _ref(patient_url)
    classes = [("group", coverage_in.group), ("plan", coverage_in.plan)]
    coverage_classes = [{"type": _concept("http://terminology.hl7.org/CodeSystem/coverage-class", kind),
                         "value": value} for kind, value in classes if value]
    if coverage_classes:
        coverage["class"] = coverage_classes
    coverage_url = entries.add("coverage", coverage)

    items: list[Json] = []
    request_urls: list[str] = []
    for sequence, line in zip(order.item_sequences(), order.services, strict=True):
        request_url = entries.add(f"service:{sequence}",
                                  _service_request(line, patient_url, role_url, coverage_url))
        request_urls.append(request_url)
        item: Json = {
            "extension": [
                {"url": codes.EXT_REQUEST_TYPE, "valueCodeableConcept": _concept(codes.X12_REQUEST_TYPE,
                                                                                 line.request_type)},
                {"url": codes.EXT_CERTIFICATION_TYPE,
                 "valueCodeableConcept": _concept(codes.X12_CERTIFICATION_TYPE, line.certification_type)},
                {"url": codes.EXT_REQUESTED_SERVICE, "valueReference": _ref(request_url)},
            ],
            "sequence": sequence,
            "careTeamSequence": [1],
            "category": _concept(codes.X12_SERVICE_TYPE, line.category),
            "productOrService": _product(line),
            "locationCodeableConcept": _concept(codes.POS, line.place_of_service),
        }
        if order.diagnoses:
            indexes = line.diagnoses or list(range(len(order.diagnoses)))
            item["diagnosisSequence"] = [index + 1 for index in indexes]
        if line.modifiers:
            item["modifier"] = [_concept(item["productOrService"]["coding"][0]["system"], m)
                                for m in line.modifiers]
        item.update(_serviced(line))
        quantity = _quantity(line)
        if quantity:
            item["quantity"] = quantity
        items.append(item)

    supporting: list[Json] = []
    for attachment in order.attachments:
        doc_url = entries.add(f"doc:{len(supporting)}", _document(attachment, patient_url, practitioner_url, stamp))
        info: Json = {"url": codes.EXT_DOCUMENT_INFORMATION, "extension": [
            {"url": "reportTypeCode", "valueCodeableConcept": _concept(codes.X12_REPORT_TYPE,
                                                                       attachment.report_type)},
            {"url": "transmissionMethod", "valueCodeableConcept": _concept(codes.X12_TRANSMISSION, "EL")},
        ]}
        supporting.append({"extension": [info], "sequence": len(supporting) + 1,
                           "category": _concept(codes.PAS_TEMP_CODES, "additionalInformation"),
                           "valueReference": _ref(doc_url)})
    known = {"Patient": patient_url, "Coverage": coverage_url, "Practitioner": practitioner_url,
             "PractitionerRole": role_url, "Organization": requestor_url}
    for n, doc in enumerate(order.documentation):
        doc_url = _documentation(doc, n, entries, known, request_urls)
        parts: list[Json] = [
            {"url": "reportTypeCode", "valueCodeableConcept": _concept(codes.X12_REPORT_TYPE, doc.report_type)},
            {"url": "transmissionMethod", "valueCodeableConcept": _concept(codes.X12_TRANSMISSION, "EL")},
        ]
        if doc.description:
            parts.append({"url": "description", "valueString": doc.description})
        supporting.append({"extension": [{"url": codes.EXT_DOCUMENT_INFORMATION, "extension": parts}],
                           "sequence": len(supporting) + 1,
                           "category": _concept(codes.PAS_TEMP_CODES, "additionalInformation"),
                           "valueReference": _ref(doc_url)})
    if order.note:
        supporting.append({"sequence": len(supporting) + 1,
                           "category": _concept(codes.PAS_TEMP_CODES, "freeFormMessage"),
                           "valueString": order.note})

    claim_trn = make_id().replace("-", "")
    claim_extensions: list[Json] = [_transmission(sender)]
    if order.urgency == "expedited":
        claim_extensions.insert(0, {"url": codes.EXT_LEVEL_OF_SERVICE,
                                    "valueCodeableConcept": _concept(codes.X12_LEVEL_OF_SERVICE, "U", "Urgent")})
    claim: Json = {
        "resourceType": "Claim",
        "meta": _meta(codes.CLAIM),
        "extension": claim_extensions,
        "identifier": [{"system": f"urn:trnorg:{sender.trn_originator}", "value": claim_trn}],
        "status": "active",
        "type": _concept(codes.CLAIM_TYPE, order.claim_type),
        "use": "preauthorization",
        "patient": _ref(patient_url),
        "created": stamp,
        "insurer": _ref(insurer_url),
        "provider": _ref(requestor_url),
        "priority": _concept(codes.PROCESS_PRIORITY, "stat" if order.urgency == "expedited" else "normal"),
        "careTeam": [{"extension": [{"url": codes.EXT_CARE_TEAM_SCOPE, "valueBoolean": True}],
                      "sequence": 1, "provider": _ref(role_url)}],
        "insurance": [{"sequence": 1, "focal": True, "coverage": _ref(coverage_url)}],
        "item": items,
    }
    if order.diagnoses:
        claim["diagnosis"] = [
            {"sequence": n, "diagnosisCodeableConcept": _concept(codes.ICD10CM, dx.code, dx.display),
             **({"type": [_concept(codes.DIAGNOSIS_TYPE, "principal")]} if n == 1 else {})}
            for n, dx in enumerate(order.diagnoses, start=1)
        ]
    if supporting:
        claim["supportingInfo"] = supporting
    # Keep FHIR's element order (supportingInfo and diagnosis come before insurance); readers don't care, diffs do.
    order_keys = ["resourceType", "meta", "extension", "identifier", "status", "type", "use", "patient", "created",
                  "insurer", "provider", "priority", "careTeam", "supportingInfo", "diagnosis", "insurance", "item"]
    entries.entries[0]["resource"] = {key: claim[key] for key in order_keys if key in claim}

    bundle_id = make_id()
    bundle: Json = {
        "resourceType": "Bundle",
        "meta": _meta(codes.REQUEST_BUNDLE),
        "identifier": {"system": sender.submitter_system, "value": bundle_id},
        "type": "collection",
        "timestamp": stamp,
        "entry": entries.entries,
    }
    return PasRequest(
        bundle=bundle,
        bundle_identifier=f"{sender.submitter_system}|{bundle_id}",
        claim_identifier=f"urn:trnorg:{sender.trn_originator}|{claim_trn}",
        claim_full_url=claim_url,
        item_sequences=tuple(item["sequence"] for item in items),
        order_id=order.order_id,
    )

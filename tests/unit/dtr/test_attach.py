"""DTR output into the PAS request: nested QR Bundle + Claim.supportingInfo AdditionalInformation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from fhir_pa.dtr.attach import attach_documentation
from fhir_pa.dtr.response import QR_CONTEXT, QR_COVERAGE, finish_response, qr_bundle, set_origin
from fhir_pa.errors import InputError, ProfileError
from fhir_pa.pas import codes
from fhir_pa.pas.bundle import build_request_bundle
from fhir_pa.pas.checks import check_request_bundle
from fhir_pa.pas.order import PriorAuthOrder, order_from_data
from fhir_pa.pas.references import BundleIndex
from tests.conftest import load_fixture, order_data

Json = dict[str, Any]
MakeOrder = Callable[..., PriorAuthOrder]


def _completed_bundle(status: str = "completed") -> Json:
    """The test kit's dinner response, finished as DTR 2.2 and answering one item with an Observation."""
    source = load_fixture("dtr", "questionnaire-responses", "dinner_questionnaire_response_conformant.spec.json")
    source["item"][0]["item"][1]["answer"][0]["extension"] = []
    set_origin(source["item"][0]["item"][1]["answer"][0], "override", "Practitioner/pra1234")  # dtrx-1
    answer: Json = {"valueReference": {"reference": "Observation/o1"}}
    set_origin(answer, "manual", "Practitioner/pra1234")
    source["item"].append({"linkId": "4", "answer": [answer]})
    response = finish_response(source, coverage="Coverage/cov015", orders=["DeviceRequest/devreq015"],
                               author="Practitioner/pra1234", status=status,  # type: ignore[arg-type]
                               authored=datetime(2026, 3, 1, tzinfo=UTC))
    observation = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "SpO2"},
                   "subject": {"reference": "Patient/pat015"}}
    return qr_bundle(response, [observation])


def _entry(bundle: Json, full_url: str) -> Json:
    index = BundleIndex(bundle["entry"])
    found = index.resolve(full_url, None)
    assert len(found) == 1, full_url
    entry: Json = bundle["entry"][found[0]]
    return entry


def test_attached_documentation_passes_pas_checks(make_order: MakeOrder) -> None:
    order = make_order(attachments=[{"content_type": "application/pdf", "data": "JVBERi0="}], note="see form")
    attached = attach_documentation(order, _completed_bundle(), description="DTR dinner form")
    assert order.documentation == [] and len(attached.documentation) == 1
    request = build_request_bundle(attached)
    assert check_request_bundle(request.bundle) == []
    infos = request.claim["supportingInfo"]
    assert [i["sequence"] for i in infos] == [1, 2, 3]
    dtr = infos[1]
    assert dtr["category"]["coding"][0] == {"system": codes.PAS_TEMP_CODES, "code": "additionalInformation"}
    doc_info = [e for e in dtr["extension"] if e["url"] == codes.EXT_DOCUMENT_INFORMATION]
    assert len(doc_info) == 1
    parts = {p["url"]: p for p in doc_info[0]["extension"]}
    assert parts["reportTypeCode"]["valueCodeableConcept"]["coding"][0]["code"] == "OZ"
    assert parts["description"]["valueString"] == "DTR dinner form"
    nested = _entry(request.bundle, dtr["valueReference"]["reference"])["resource"]
    assert nested["resourceType"] == "Bundle" and nested["type"] == "collection"
    assert [e["resource"]["resourceType"] for e in nested["entry"]] == ["QuestionnaireResponse"]


def test_response_points_at_the_pas_entries(make_order: MakeOrder) -> None:
    request = build_request_bundle(attach_documentation(make_order(), _completed_bundle()))
    bundle, claim = request.bundle, request.claim
    nested = _entry(bundle, claim["supportingInfo"][0]["valueReference"]["reference"])["resource"]
    qr = nested["entry"][0]["resource"]
    assert qr["subject"]["reference"] == claim["patient"]["reference"]
    coverage = [e["valueReference"]["reference"] for e in qr["extension"] if e["url"] == QR_COVERAGE]
    assert coverage == [claim["insurance"][0]["coverage"]["reference"]]
    contexts = [e["valueReference"]["reference"] for e in qr["extension"] if e["url"] == QR_CONTEXT]
    requested = [e["valueReference"]["reference"] for item in claim["item"] for e in item["extension"]
                 if e["url"] == codes.EXT_REQUESTED_SERVICE]
    assert contexts == requested
    author = _entry(bundle, qr["author"]["reference"])["resource"]
    assert author["resourceType"] == "Practitioner"
    # the Observation answered with moved up into the PAS Bundle, once, and points at the PAS Patient
    observation_ref = qr["item"][-1]["answer"][0]["valueReference"]["reference"]
    observation = _entry(bundle, observation_ref)["resource"]
    assert observation["resourceType"] == "Observation"
    assert observation["subject"]["reference"] == claim["patient"]["reference"]
    assert sum(e["resource"]["resourceType"] == "Observation" for e in bundle["entry"]) == 1


def test_only_completed_dtr_bundles(make_order: MakeOrder) -> None:
    with pytest.raises(ProfileError) as in_progress:
        attach_documentation(make_order(), _completed_bundle("in-progress"))
    assert in_progress.value.issues[0].rule == "status"
    with pytest.raises(ProfileError) as not_qr:
        attach_documentation(make_order(), {"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Observation"}}]})
    assert not_qr.value.issues[0].rule == "dtrb-2"


def test_order_file_carries_documentation() -> None:
    order = order_from_data(order_data(documentation=[{"bundle": _completed_bundle(), "report_type": "09"}]))
    request = build_request_bundle(order)
    assert check_request_bundle(request.bundle) == []
    info = request.claim["supportingInfo"][0]["extension"][0]["extension"][0]
    assert info["valueCodeableConcept"]["coding"][0]["code"] == "09"
    with pytest.raises(InputError) as caught:
        order_from_data(order_data(documentation=[{"bundle": {"resourceType": "Bundle", "entry": []}}]))
    assert caught.value.path == "documentation[0]"


def test_documentation_must_be_valid_dtr(make_order: MakeOrder) -> None:
    bundle = _completed_bundle()
    bundle["entry"][0]["resource"]["extension"] = [
        e for e in bundle["entry"][0]["resource"]["extension"] if e["url"] != QR_COVERAGE]
    with pytest.raises(ProfileError) as caught:
        attach_documentation(make_order(), bundle)
    assert caught.value.issues[0].path == "Bundle.entry[0].resource.extension('qr-coverage')"


def test_shared_answer_resource_sent_once(make_order: MakeOrder) -> None:
    order = attach_documentation(attach_documentation(make_order(), _completed_bundle()), _completed_bundle())
    bundle = build_request_bundle(order).bundle
    assert check_request_bundle(bundle) == []
    assert sum(e["resource"]["resourceType"] == "Observation" for e in bundle["entry"]) == 1
    assert sum(e["resource"]["resourceType"] == "Bundle" for e in bundle["entry"]) == 2

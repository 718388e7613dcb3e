"""Finishing the DTR QuestionnaireResponse (2.2 and 2.0.1) and the DTR QR Bundle."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from fhir_pa.dtr.response import (
    INTENDED_USE,
    PROFILE,
    QR_CONTEXT,
    QR_COVERAGE,
    check_qr_bundle,
    check_response,
    finish_response,
    origin_issues,
    origin_of,
    qr_bundle,
)
from fhir_pa.errors import ProfileError
from tests.conftest import load_fixture

Json = dict[str, Any]


def _qr(name: str) -> Json:
    data = load_fixture("dtr", "questionnaire-responses", name)
    qr: Json = data[0] if isinstance(data, list) else data
    return qr


def _answers(response: Json) -> list[Json]:
    out: list[Json] = []

    def walk(node: Json) -> None:
        for item in node.get("item", []):
            out.extend(item.get("answer", []))
            walk(item)
            for answer in item.get("answer", []):
                walk(answer)
    walk(response)
    return out


def test_dinner_conformant_passes_as_201_but_for_dtrx1() -> None:
    # the test kit's "conformant" dinner response marks PBD.2 'override' without an author: the 2.0.1
    # expression of dtrx-1 (source = auto) != (author exists) fails on it, and on nothing else
    issues = check_response(_qr("dinner_questionnaire_response_conformant.spec.json"), "2.0.1")
    assert [(i.path, i.rule) for i in issues] == [
        ("QuestionnaireResponse.item.where(linkId='PBD.2').answer[0]", "dtrx-1")]


def test_dinner_conformant_is_not_22() -> None:
    rules = {(i.rule, i.message.split(" ")[0]) for i in
             check_response(_qr("dinner_questionnaire_response_conformant.spec.json"), "2.2")}
    assert ("cardinality", "qr-coverage") in rules
    assert ("version", "in") in rules  # Coverage sits in qr-context
    assert ("information-origin", "origin") in rules  # 'auto' is not a 2.2 code


def test_missing_origins_are_each_reported() -> None:
    response = _qr("dinner_questionnaire_response_missing_answers.spec.json")
    issues = origin_issues(response, "2.0.1")
    assert len(issues) == len(_answers(response)) == 5
    assert issues[0].path == "QuestionnaireResponse.item.where(linkId='PBD.1').answer[0]"
    params = load_fixture("dtr", "next-question", "next_question_input_params_no_origin_extension.spec.json")
    assert {i.rule for i in origin_issues(params["parameter"][0]["resource"], "2.0.1")} == {"information-origin"}


def test_incorrect_origin_breaks_dtrx1() -> None:
    issues = origin_issues(_qr("questionnaire_response_incorrect_origin.spec.json"), "2.0.1")
    assert [(i.path, i.rule) for i in issues
            if i.rule == "dtrx-1"] == [("QuestionnaireResponse.item.where(linkId='PBD.1').answer[0]", "dtrx-1")]


def test_rad_fixtures_by_reason() -> None:
    # the test kit's "conformant" RAD response leaves one answer (3.2, the second diagnosis) without an origin,
    # which 2.0.1's information-origin 1..1 forbids: exactly that answer is reported
    conformant = origin_issues(_qr("questionnaire_response_conformant.spec.json"), "2.0.1")
    assert [i.path for i in conformant] == ["QuestionnaireResponse.item.where(linkId='3.2').answer[1]"]
    broken = origin_issues(_qr("questionnaire_response_missing_data_requirement.spec.json"), "2.0.1")
    assert "QuestionnaireResponse.item.where(linkId='PBD.1').answer[0]" in {i.path for i in broken}


def _draft() -> Json:
    return {"resourceType": "QuestionnaireResponse", "questionnaire": "http://p/Q|1", "status": "in-progress",
            "subject": {"reference": "Patient/p1"},
            "extension": [{"url": QR_CONTEXT, "valueReference": {"reference": "Coverage/old"}}],
            "item": [{"linkId": "1", "answer": [{"valueString": "x", "extension": [
                {"url": "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin",
                 "extension": [{"url": "source", "valueCode": "auto"}]}]}]},
                     {"linkId": "2", "answer": [{"valueBoolean": True}]}]}


def test_finish_22() -> None:
    out = finish_response(_draft(), coverage="Coverage/c1", orders=["DeviceRequest/d1"], author="Practitioner/pr1",
                          authored=datetime(2026, 3, 1, 12, tzinfo=UTC), default_origin="manual")
    urls = [e["url"] for e in out["extension"]]
    assert urls == [QR_COVERAGE, QR_CONTEXT, INTENDED_USE]
    assert out["extension"][0]["valueReference"] == {"reference": "Coverage/c1", "type": "Coverage"}
    assert out["extension"][1]["valueReference"]["reference"] == "DeviceRequest/d1"
    assert out["extension"][2]["valueCodeableConcept"]["coding"][0]["code"] == "withpa"
    assert out["status"] == "completed" and out["authored"] == "2026-03-01T12:00:00Z"
    assert out["author"]["reference"] == "Practitioner/pr1" and out["meta"]["profile"] == [PROFILE]
    first, second = (a for a in _answers(out))
    assert origin_of(first) == ("auto-client", False)  # legacy 'auto' upgraded
    assert origin_of(second) == ("manual", True)
    assert check_response(out) == []
    assert _draft()["status"] == "in-progress"  # the input is not changed


def test_finish_201_switch() -> None:
    draft = _draft()
    draft["item"][0]["answer"][0]["extension"][0]["extension"][0]["valueCode"] = "auto-server"
    out = finish_response(draft, coverage="Coverage/c1", orders=["ServiceRequest/s1"], intended_use="withorder",
                          status="in-progress", default_origin="manual", author="Practitioner/pr1",
                          version="2.0.1")
    contexts = [e["valueReference"]["reference"] for e in out["extension"] if e["url"] == QR_CONTEXT]
    assert contexts == ["ServiceRequest/s1", "Coverage/c1"]
    assert not any(e["url"] == QR_COVERAGE for e in out["extension"])
    assert origin_of(_answers(out)[0]) == ("auto", False)
    assert out["meta"]["profile"][0].endswith("|2.0.1") and out["status"] == "in-progress"
    assert check_response(out, "2.0.1") == []


def test_qr_context_target_types() -> None:
    with pytest.raises(ProfileError) as caught:
        finish_response(_draft(), coverage="Coverage/c1", orders=["Patient/p1"], default_origin="manual",
                        author="Practitioner/pr1")
    assert [i.rule for i in caught.value.issues] == ["type"]


def test_finish_refuses_answers_without_origin() -> None:
    with pytest.raises(ProfileError) as caught:
        finish_response(_draft(), coverage="Coverage/c1")
    assert caught.value.issues[0].path == "QuestionnaireResponse.item.where(linkId='2').answer[0]"
    with pytest.raises(ProfileError) as manual:
        finish_response(_draft(), coverage="Coverage/c1", default_origin="manual")  # manual needs an author
    assert manual.value.issues[0].rule == "dtrx-1"


def _with_reference() -> Json:
    response = finish_response(_draft(), coverage="Coverage/c1", default_origin="manual", author="Practitioner/pr1")
    response["contained"] = [{"resourceType": "Observation", "id": "inner"}]
    response["item"].append({"linkId": "3", "answer": [
        {"valueReference": {"reference": "Observation/o1"}, "extension": copy.deepcopy(
            _answers(response)[0]["extension"])},
        {"valueReference": {"reference": "#inner"}, "extension": copy.deepcopy(_answers(response)[0]["extension"])},
    ]})
    return response


def test_qr_bundle_holds_answer_targets() -> None:
    ids = iter(f"00000000-0000-4000-8000-00000000000{n}" for n in range(1, 9))
    bundle = qr_bundle(_with_reference(), [{"resourceType": "Observation", "id": "o1"},
                                           {"resourceType": "Observation", "id": "unused"}],
                       new_id=lambda: next(ids))
    assert bundle["type"] == "collection"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["QuestionnaireResponse", "Observation"]  # unused resources stay out, contained stay in
    qr = bundle["entry"][0]["resource"]
    assert qr["item"][2]["answer"][0]["valueReference"]["reference"] == bundle["entry"][1]["fullUrl"]
    assert qr["item"][2]["answer"][1]["valueReference"]["reference"] == "#inner"
    assert check_qr_bundle(bundle) == []


def test_qr_bundle_restful_and_missing_target() -> None:
    response = _with_reference()
    response["id"] = "qr1"
    bundle = qr_bundle(response, [{"resourceType": "Observation", "id": "o1"}], base="https://ehr.test/fhir/")
    assert [e["fullUrl"] for e in bundle["entry"]] == ["https://ehr.test/fhir/QuestionnaireResponse/qr1",
                                                       "https://ehr.test/fhir/Observation/o1"]
    assert check_qr_bundle(bundle) == []
    with pytest.raises(ProfileError) as caught:
        qr_bundle(response, [])
    assert caught.value.issues[0].rule == "spec-156"


def test_check_qr_bundle_rules() -> None:
    qr = {"resourceType": "QuestionnaireResponse"}
    assert check_qr_bundle({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Observation"}}, {"resource": qr}]})[0].rule == "dtrb-2"
    two = check_qr_bundle({"resourceType": "Bundle", "type": "document", "entry": [{"resource": qr},
                                                                                 {"resource": qr}]})
    assert [i.rule for i in two] == ["DTR-QRBundle", "dtrb-2"]

"""The $next-question loop, replaying the test kit's adaptive dinner order (initial → burrito/hamburger)."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
import respx

from fhir_pa.dtr.adaptive import (
    AdaptiveIncomplete,
    adaptive_base,
    adaptive_flow,
    check_next_question_parameters,
    next_question_parameters,
    read_next_question,
)
from fhir_pa.dtr.completion import IncompleteResponse, answers_by_link_id, ensure_complete
from fhir_pa.dtr.package import read_package_response
from fhir_pa.dtr.response import set_origin
from fhir_pa.errors import InvalidResponse, PayerRejected
from fhir_pa.fhir.flow import run_async, run_sync
from fhir_pa.pas.order import CRD_COVERAGE_INFORMATION
from tests.conftest import load_fixture

Json = dict[str, Any]
BASE = "https://payer.test/fhir"
URL = f"{BASE}/Questionnaire/$next-question"
COVERAGE_INFO: Json = {"url": CRD_COVERAGE_INFORMATION, "extension": [
    {"url": "covered", "valueCode": "covered"}, {"url": "coverage-assertion-id", "valueString": "a-1"}]}


def _shell() -> Json:
    params = load_fixture("dtr", "next-question", "next_question_initial_input_params_conformant.spec.json")
    qr: Json = params["parameter"][0]["resource"]
    return qr


def _fragment(name: str) -> Json:
    fragment: Json = load_fixture("dtr", "next-question", f"dinner_order_adaptive_next_question_{name}.testkit.json")
    return fragment


class DinnerPayer:
    """The test kit's mock payer: grows the contained Questionnaire by the dinner choice, then completes."""

    def __init__(self, in_name: str = "questionnaire-response", out_name: str = "return") -> None:
        self.in_name, self.out_name = in_name, out_name
        self.seen: list[Json] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = json.loads(request.content)
        assert [p["name"] for p in params["parameter"]] == [self.in_name]
        assert check_next_question_parameters(params, "2.1" if self.in_name.endswith("-in") else "2.2") == []
        qr: Json = params["parameter"][0]["resource"]
        self.seen.append(qr)
        answers = answers_by_link_id(qr)
        out = copy.deepcopy(qr)
        if "3.1" not in answers:
            step = "initial"
        elif not {"3.2.a", "3.2.b"} & set(answers):
            step = "burrito" if answers["3.1"][0]["valueCoding"]["code"] == "Bean Burrito" else "hamburger"
        else:
            out["status"] = "completed"
            out["extension"] = [*out.get("extension", []), COVERAGE_INFO]
            step = ""
        if step:
            contained = _fragment(step)
            contained["url"] = qr["contained"][0].get("url")
            out["contained"] = [contained]
        return httpx.Response(200, json={"resourceType": "Parameters",
                                         "parameter": [{"name": self.out_name, "resource": out}]})


def _set(qr: Json, link_id: str, *values: Json) -> None:
    """Answer ``link_id`` (creating the item under its group) with origin manual by the practitioner."""
    group_id = link_id.split(".")[0]
    group = next((i for i in qr.setdefault("item", []) if i["linkId"] == group_id), None)
    if group is None:
        group = {"linkId": group_id, "item": []}
        qr["item"].append(group)
    answers = [dict(v) for v in values]
    for answer in answers:
        set_origin(answer, "manual", "Practitioner/pr1")
    group["item"] = [i for i in group["item"] if i["linkId"] != link_id] + [{"linkId": link_id, "answer": answers}]


def _answerer(choice: str, calls: list[Json]) -> Any:
    def answer(qr: Json) -> Json:
        calls.append(qr)
        out = copy.deepcopy(qr)
        link_ids = {i["linkId"] for g in out["contained"][0]["item"] for i in g.get("item", [])}
        if "3.2.a" in link_ids or "3.2.b" in link_ids:
            topping = "3.2.b" if "3.2.b" in link_ids else "3.2.a"
            code = "Guacamole" if topping == "3.2.b" else "Pickles"
            _set(out, topping, {"valueCoding": {"code": code}})
            _set(out, "3.3", {"valueString": "napkins"})
        else:
            _set(out, "PBD.1", {"valueString": "Smith"})
            _set(out, "PBD.2", {"valueString": "John"})
            _set(out, "LOC.1", {"valueString": "Home"})
            _set(out, "3.1", {"valueCoding": {"code": choice}})
        ensure_complete(out, out["contained"][0])  # never advance with an invalid answer (spec-146)
        return out
    return answer


@pytest.mark.parametrize(("choice", "branch"), [("Bean Burrito", "3.2.b"), ("Hamburger", "3.2.a")])
@respx.mock
def test_dinner_adaptive_replay(choice: str, branch: str) -> None:
    payer = DinnerPayer()
    respx.post(URL).mock(side_effect=payer)
    calls: list[Json] = []
    with httpx.Client() as http:
        result = run_sync(adaptive_flow(BASE, _shell(), _answerer(choice, calls)), http, None)
    assert result.rounds == 3 and result.response["status"] == "completed"
    assert result.coverage_information == (COVERAGE_INFO,)
    # the callback saw the initial questions, then the branch the payer chose
    grown = [{i["linkId"] for g in c["contained"][0]["item"] for i in g.get("item", [])} for c in calls]
    assert "3.1" in grown[0] and branch in grown[1] and not {"3.2.a", "3.2.b"} & grown[0]
    assert answers_by_link_id(payer.seen[-1])[branch]  # the branch answer was sent
    assert result.warnings == ()


@respx.mock
async def test_21_parameter_names_async() -> None:
    payer = DinnerPayer("questionnaire-response-in", "questionnaire-response-out")
    respx.post(URL).mock(side_effect=payer)
    async with httpx.AsyncClient() as http:
        result = await run_async(adaptive_flow(BASE, _shell(), _answerer("Hamburger", []), version="2.1"), http,
                                 None)
    assert result.response["status"] == "completed" and len(payer.seen) == 3


@respx.mock
def test_invalid_response_400_is_typed() -> None:
    respx.post(URL).mock(return_value=httpx.Response(400, json={"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "required", "diagnostics": "3.1 needs an answer",
         "expression": ["QuestionnaireResponse.item.where(linkId='3.1')"]}]}))
    with httpx.Client() as http, pytest.raises(PayerRejected) as caught:
        run_sync(adaptive_flow(BASE, _shell(), lambda qr: qr), http, None)
    assert caught.value.status == 400 and caught.value.path == "QuestionnaireResponse.item.where(linkId='3.1')"


@respx.mock
def test_rounds_are_bounded() -> None:
    stuck = _shell()
    respx.post(URL).mock(return_value=httpx.Response(200, json=stuck))  # bare QR, never completed
    with httpx.Client() as http, pytest.raises(AdaptiveIncomplete) as caught:
        run_sync(adaptive_flow(BASE, _shell(), lambda qr: qr, max_rounds=3), http, None)
    assert "3 rounds" in str(caught.value)
    assert len(respx.calls) == 3


def test_callback_must_return_a_response() -> None:
    flow = adaptive_flow(BASE, _shell(), lambda qr: {"resourceType": "Bundle"})
    next(flow)
    with pytest.raises(InvalidResponse):
        flow.send(httpx.Response(200, json=_shell()))


def test_read_next_question_shapes() -> None:
    qr = _shell()
    assert read_next_question(200, json.dumps(qr).encode())["id"] == "adaptive-dinner-response"
    with pytest.raises(InvalidResponse):
        read_next_question(200, json.dumps({"resourceType": "Parameters", "parameter": [
            {"name": "return", "resource": {"resourceType": "Questionnaire"}}]}).encode())
    with pytest.raises(InvalidResponse):
        next_question_parameters({"resourceType": "Questionnaire"})
    assert next_question_parameters(qr, "2.1")["parameter"][0]["name"] == "questionnaire-response-in"


def test_adaptive_base_boolean_means_same_payer() -> None:
    bundle = load_fixture("dtr", "packages", "dinner-adaptive-package-bundle.testkit.json")
    package = read_package_response(200, json.dumps(bundle).encode()).packages[0]
    assert adaptive_base(package, BASE) == BASE
    package.questionnaire["extension"][0] = {
        "url": "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-questionnaireAdaptive",
        "valueUrl": "https://other.test/fhir"}
    assert adaptive_base(package, BASE) == "https://other.test/fhir"


def test_next_question_input_fixtures() -> None:
    for name in ("next_question_initial_input_params_conformant.spec.json",
                 "next_question_input_params_missing_answer.spec.json"):
        assert check_next_question_parameters(load_fixture("dtr", "next-question", name)) == [], name
    params = load_fixture("dtr", "next-question", "next_question_initial_input_params_nonconformant.spec.json")
    assert [i.rule for i in check_next_question_parameters(params)] == ["cardinality"]
    assert check_next_question_parameters(next_question_parameters(_shell(), "2.1"), "2.1") == []
    assert [i.rule for i in check_next_question_parameters(next_question_parameters(_shell(), "2.1"))] == \
        ["cardinality"]
    detached = _shell()
    detached["questionnaire"] = "urn:inferno:dtr-test-kit:dinner-order-adaptive"
    assert [i.rule for i in check_next_question_parameters(next_question_parameters(detached))] == ["sdc-adaptive"]


@respx.mock
def test_invalid_answers_are_not_sent() -> None:
    payer = DinnerPayer()
    respx.post(URL).mock(side_effect=payer)

    def forgets_dinner(qr: Json) -> Json:
        out = copy.deepcopy(qr)
        _set(out, "PBD.1", {"valueString": "Smith"})
        return out
    with httpx.Client() as http, pytest.raises(IncompleteResponse) as caught:
        run_sync(adaptive_flow(BASE, _shell(), forgets_dinner), http, None)
    assert len(payer.seen) == 1  # only the empty shell went out
    assert "QuestionnaireResponse.item.where(linkId='3.1').answer" in {i.path for i in caught.value.issues}
    with httpx.Client() as http, pytest.raises(AdaptiveIncomplete):
        run_sync(adaptive_flow(BASE, _shell(), forgets_dinner, validate=False, max_rounds=2), http, None)
    assert len(payer.seen) == 3

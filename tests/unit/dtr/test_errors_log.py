"""$log-questionnaire-errors: where and what, never patient values."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from fhir_pa.dtr.errors_log import (
    QuestionnaireError,
    error_outcome,
    log_errors_flow,
    log_errors_parameters,
    record_from_exception,
)
from fhir_pa.errors import InputError, InvalidResponse, PayerRejected
from fhir_pa.fhir.flow import run_sync

BASE = "https://payer.test/fhir"
URL = f"{BASE}/Questionnaire/$log-questionnaire-errors"
Q = "http://payer.test/Questionnaire/RAD|1"


def test_outcome_locates_by_link_id_and_expression() -> None:
    outcome = error_outcome([QuestionnaireError("singleton from got 2 elements", link_id="PBD.1",
                                                expression='"BasicPatientInfo".FullName'),
                             QuestionnaireError("malformed ELM", code="invalid", severity="fatal")])
    first, second = outcome["issue"]
    assert first == {"severity": "error", "code": "processing", "diagnostics": "singleton from got 2 elements",
                     "expression": ["Questionnaire.item.where(linkId='PBD.1')", '"BasicPatientInfo".FullName']}
    assert second["code"] == "invalid" and second["severity"] == "fatal" and "expression" not in second
    with pytest.raises(InputError):
        error_outcome([])


def test_exception_records_keep_no_values() -> None:
    record = record_from_exception(ValueError("patient John Smith has two names"), link_id="PBD.1")
    assert record.message == "ValueError while evaluating" and "Smith" not in record.message
    ours = record_from_exception(InvalidResponse("bad ELM node", path="$.library"))
    assert ours.message == "bad ELM node"


def test_parameters_cardinalities() -> None:
    outcome = error_outcome([QuestionnaireError("x")])
    params = log_errors_parameters([Q], [outcome])
    assert [p["name"] for p in params["parameter"]] == ["questionnaire", "operationOutcome"]
    assert params["parameter"][0]["valueCanonical"] == Q
    with pytest.raises(InputError) as no_q:
        log_errors_parameters([], [outcome])
    assert no_q.value.path == "questionnaire"
    with pytest.raises(InputError) as no_o:
        log_errors_parameters([Q], [])
    assert no_o.value.path == "operationOutcome"
    with pytest.raises(InputError):
        log_errors_parameters([Q], [{"resourceType": "OperationOutcome", "issue": []}])


@respx.mock
def test_flow_posts_and_reports_rejection() -> None:
    route = respx.post(URL).mock(side_effect=[httpx.Response(200), httpx.Response(
        400, json={"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid",
                                                                 "diagnostics": "unknown Questionnaire"}]})])
    errors = [QuestionnaireError("engine stopped", link_id="3.1")]
    with httpx.Client() as http:
        assert run_sync(log_errors_flow(BASE, [Q], errors), http, None) == 200
        with pytest.raises(PayerRejected) as caught:
            run_sync(log_errors_flow(BASE, [Q], errors), http, None)
    sent = json.loads(route.calls[0].request.content)
    assert sent["parameter"][1]["resource"]["issue"][0]["expression"] == ["Questionnaire.item.where(linkId='3.1')"]
    assert "unknown Questionnaire" in str(caught.value)


def test_elm_error_names_its_define() -> None:
    from fhir_pa.dtr.elm.errors import ElmError

    record = record_from_exception(ElmError("singleton from got 2 elements", library="BasicPatientInfo",
                                            define="FullName"), link_id="PBD.1")
    assert record.expression == '"BasicPatientInfo".FullName' and record.link_id == "PBD.1"

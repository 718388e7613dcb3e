"""ext-coverage-information: reading every dialect, the CRD 2.2 invariants, and the per-order decisions."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from fhir_pa.crd.cards import parse_hook_response
from fhir_pa.crd.coverage_info import (
    CRD_TEMP,
    EXT_COVERAGE_INFORMATION,
    Contact,
    CoverageInformation,
    Telecom,
    check_coverage_information,
    coverage_information_of,
)
from fhir_pa.crd.decision import coverage_decisions, indeterminate
from fhir_pa.pas.decision_types import Coding, Period, Quantity


def _ext(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"url": EXT_COVERAGE_INFORMATION, "extension": list(parts)}


def _code(url: str, code: str) -> dict[str, Any]:
    return {"url": url, "valueCode": code}


BASE = (
    {"url": "coverage", "valueReference": {"reference": "Coverage/cov-1"}},
    {"url": "date", "valueDate": "2026-11-30"},
    {"url": "coverage-assertion-id", "valueString": "CA-1"},
)


def _info(*parts: dict[str, Any], resource_type: str = "ServiceRequest") -> CoverageInformation:
    found, _ = coverage_information_of({"resourceType": resource_type, "id": "1", "extension": [_ext(*BASE, *parts)]})
    (info,) = found
    return info


def _rules(info: CoverageInformation) -> list[str]:
    return [i.rule for i in check_coverage_information(info)]


# -- reading ----------------------------------------------------------------------------------------------


def test_reads_every_part_of_a_22_repetition() -> None:
    info = _info(
        _code("covered", "covered"), _code("pa-needed", "auth-needed"), _code("doc-needed", "clinical"),
        _code("doc-needed", "patient"), _code("doc-purpose", "withpa"), _code("info-needed", "timeframe"),
        {"url": "billingCode", "valueCoding": {"system": "http://www.ama-assn.org/go/cpt", "code": "94640"}},
        {"url": "reason", "valueCodeableConcept": {"coding": [{"system": CRD_TEMP, "code": "gold-card"}]}},
        {"url": "detail", "extension": [
            _code("category", "cat-limitation"),
            {"url": "code", "valueCodeableConcept": {"coding": [{"system": CRD_TEMP, "code": "allowed-period"}]}},
            {"url": "value", "valuePeriod": {"start": "2026-12-01", "end": "2027-02-28"}},
            {"url": "qualification", "valueString": "per plan year"}]},
        {"url": "detail", "extension": [_code("category", "cat-decisional"),
                                        {"url": "value", "valueBoolean": False}]},
        {"url": "dependency", "valueReference": {"reference": "ServiceRequest/surgery"}},
        {"url": "questionnaire", "valueCanonical": "http://payer.example/Questionnaire/Hypoxemia|1"},
        {"url": "satisfied-pa-id", "valueString": "PA-9"},
        {"url": "contact", "valueContactDetail": {"name": "UM desk",
                                                  "telecom": [{"system": "phone", "value": "555-0100"}]}},
        {"url": "expiry-date", "valueDate": "2027-01-31"},
    )
    assert (info.coverage, info.covered, info.pa_needed) == ("Coverage/cov-1", "covered", "auth-needed")
    assert (info.doc_needed, info.doc_purpose, info.info_needed) == (("clinical", "patient"), ("withpa",),
                                                                     ("timeframe",))
    assert info.billing_codes == (Coding("http://www.ama-assn.org/go/cpt", "94640", None),)
    assert [(r.system, r.code, r.text) for r in info.reasons] == [(CRD_TEMP, "gold-card", None)]
    period, flag = info.details
    assert (period.category, period.code[0].code, period.value, period.qualification) == (
        "cat-limitation", "allowed-period", Period("2026-12-01", "2027-02-28"), "per plan year")
    assert (flag.category, flag.value) == ("cat-decisional", False)
    assert info.dependencies == ("ServiceRequest/surgery",)
    assert info.questionnaires == ("http://payer.example/Questionnaire/Hypoxemia|1",)
    assert (info.date, info.coverage_assertion_id, info.satisfied_pa_id, info.expiry_date) == (
        "2026-11-30", "CA-1", "PA-9", "2027-01-31")
    assert info.contacts == (Contact("UM desk", (Telecom("phone", "555-0100", None),)),)
    assert info.legacy is False and info.path == "ServiceRequest.extension[0]"


def test_21_contact_point_and_201_doc_needed_both() -> None:
    info = _info(_code("covered", "covered"), _code("doc-needed", "both"),
                 {"url": "contact", "valueContactPoint": {"system": "url", "value": "https://payer.example/help"}},
                 {"url": "detail", "extension": [{"url": "value", "valueQuantity": {"value": 10, "code": "%"}}]})
    assert info.doc_needed == ("clinical", "admin")
    assert info.contacts == (Contact(None, (Telecom("url", "https://payer.example/help", None),)),)
    assert info.details[0].value == Quantity(10, "%")


def test_oddities_inside_are_warnings_and_the_first_value_wins() -> None:
    resource = {"resourceType": "DeviceRequest", "extension": [_ext(
        *BASE, _code("covered", "covered"), _code("pa-needed", "no-auth"), _code("pa-needed", "auth-needed"),
        {"url": "mystery", "valueString": "x"}, {"url": "date"}, _code("doc-needed", "no-doc"))]}
    (info,), warnings = coverage_information_of(resource)
    assert info.pa_needed == "no-auth" and info.doc_needed == ()
    assert warnings == (
        "DeviceRequest.extension[0].extension[6]: unknown coverage-information part 'mystery'; ignored",
        "DeviceRequest.extension[0].extension[4] is repeated but allows one value; the first is used",
        "DeviceRequest.extension[0].extension[8]: 'no-doc' is a CRD 1.x code; read as no documentation needed",
        "DeviceRequest.extension[0].extension[7] has no valueDate; ignored",
    )
    assert info.date == "2026-11-30"


LEGACY_SYSTEM = CRD_TEMP


def _legacy(*codes: str) -> CoverageInformation:
    parts = [{"url": "coverageInfo", "valueCoding": {"system": LEGACY_SYSTEM, "code": c}} for c in codes]
    resource = {"resourceType": "ServiceRequest", "id": "sr", "extension": [_ext(
        *parts, {"url": "coverage", "valueReference": {"reference": "Coverage/c"}},
        {"url": "date", "valueDate": "2024-03-01"}, {"url": "identifier", "valueString": "ri-trace-7"})]}
    (info,), warnings = coverage_information_of(resource)
    assert any("pre-2.0 coverage-information" in w for w in warnings)
    return info


@pytest.mark.parametrize(
    ("codes", "covered", "pa_needed", "doc_needed"),
    [
        (("prior-auth", "clinical"), "covered", "auth-needed", ("clinical",)),
        (("covered",), "covered", "no-auth", ()),
        (("covered", "admin"), "covered", "no-auth", ("admin",)),
        (("not-covered",), "not-covered", None, ()),
        (("clinical",), None, None, ("clinical",)),
    ],
)
def test_ri_legacy_shape_maps_onto_the_same_type(codes: tuple[str, ...], covered: str | None,
                                                 pa_needed: str | None, doc_needed: tuple[str, ...]) -> None:
    info = _legacy(*codes)
    assert (info.covered, info.pa_needed, info.doc_needed) == (covered, pa_needed, doc_needed)
    assert info.legacy and info.legacy_codes == codes
    assert (info.coverage_assertion_id, info.coverage, info.date) == ("ri-trace-7", "Coverage/c", "2024-03-01")
    assert [(i.rule, i.severity) for i in check_coverage_information(info)] == [("legacy", "warning")]


# -- CRD 2.2 rules ----------------------------------------------------------------------------------------


def test_a_valid_answer_has_no_issues() -> None:
    assert check_coverage_information(_info(_code("covered", "covered"), _code("pa-needed", "no-auth"))) == []


@pytest.mark.parametrize(
    ("parts", "rule"),
    [
        ((_code("covered", "covered"), _code("pa-needed", "no-auth"),
          {"url": "questionnaire", "valueCanonical": "http://q"}), "crd-ci-q1"),
        ((_code("covered", "not-covered"), _code("pa-needed", "no-auth")), "crd-ci-q2"),
        ((_code("covered", "conditional"),), "crd-ci-q3"),
        ((_code("covered", "covered"), _code("pa-needed", "satisfied"), _code("doc-purpose", "withpa"),
          {"url": "satisfied-pa-id", "valueString": "P"},
          {"url": "reason", "valueCodeableConcept": {"text": "t"}}), "crd-ci-q4"),
        ((_code("covered", "covered"), _code("pa-needed", "satisfied")), "crd-ci-q5"),
        ((_code("covered", "covered"), _code("pa-needed", "no-auth"),
          {"url": "satisfied-pa-id", "valueString": "P"}), "crd-ci-q5"),
        ((_code("covered", "conditional"), _code("info-needed", "OTH")), "crd-ci-q6"),
        ((_code("covered", "covered"), _code("pa-needed", "no-auth"),
          {"url": "reason", "valueCodeableConcept": {"coding": [{"system": "http://x", "code": "y"}]}}), "crd-ci-q7"),
        ((_code("covered", "covered"), _code("pa-needed", "auth-needed"), _code("doc-needed", "clinical"),
          _code("doc-purpose", "withpa")), "crd-ci-q8"),
        ((_code("covered", "indeterminate"),), "crd-ci-q9"),
    ],
)
def test_each_invariant_fires_alone(parts: tuple[dict[str, Any], ...], rule: str) -> None:
    assert _rules(_info(*parts)) == [rule]


def test_q4_applies_to_no_auth_despite_the_ig_fhirpath_typo() -> None:
    info = _info(_code("covered", "covered"), _code("pa-needed", "no-auth"), _code("doc-needed", "clinical"),
                 _code("doc-purpose", "withpa"), {"url": "reason", "valueCodeableConcept": {"text": "why"}})
    (issue,) = check_coverage_information(info)
    assert issue.rule == "crd-ci-q4" and "'no-auth'" in issue.message and issue.path == "ServiceRequest.extension[0]"


def test_info_needed_without_conditional_is_a_warning() -> None:
    issues = check_coverage_information(_info(_code("covered", "covered"), _code("pa-needed", "no-auth"),
                                              _code("info-needed", "performer")))
    assert [(i.rule, i.severity) for i in issues] == [("crd-ci-q3", "warning")]


def test_required_parts_and_value_sets() -> None:
    (info,), _ = coverage_information_of({"resourceType": "ServiceRequest", "extension": [
        _ext(_code("covered", "maybe"), _code("pa-needed", "auth-needed"))]})
    issues = check_coverage_information(info)
    assert [(i.rule, i.message) for i in issues] == [
        ("cardinality", "'coverage' is required (1..1) but missing"),
        ("cardinality", "'date' is required (1..1) but missing"),
        ("cardinality", "'coverage-assertion-id' is required (1..1) but missing"),
        ("value-set", "'covered' code 'maybe' is not in the CRD 2.2 value set"),
    ]


# -- decisions per order -----------------------------------------------------------------------------------


def _update(resource_type: str, rid: str | None, *parts: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": resource_type, "extension": [_ext(*BASE, *parts)]}
    if rid is not None:
        resource["id"] = rid
    return {"type": "update", "resource": resource}


NO_AUTH = (_code("covered", "covered"), _code("pa-needed", "no-auth"))
AUTH = (_code("covered", "covered"), _code("pa-needed", "auth-needed"), _code("doc-needed", "clinical"),
        {"url": "questionnaire", "valueCanonical": "http://q/1"})


def _card_with(*actions: dict[str, Any]) -> dict[str, Any]:
    return {"uuid": "c", "summary": "s", "indicator": "info", "source": {"label": "RI"}, "selectionBehavior": "any",
            "suggestions": [{"label": "Save", "uuid": "s", "actions": list(actions)}]}


def test_system_actions_win_over_suggestions_for_the_same_order() -> None:
    response = parse_hook_response({"cards": [_card_with(_update("ServiceRequest", "1", *AUTH))],
                                    "systemActions": [_update("ServiceRequest", "1", *NO_AUTH)]})
    (decision,) = coverage_decisions(response)
    assert (decision.order, decision.origin, decision.pa_needed) == ("ServiceRequest/1", "system-action", "no-auth")
    assert decision.sources == ("$.systemActions[0]",) and decision.issues == ()


def test_suggestions_are_used_when_a_service_sends_them_only_there() -> None:
    response = parse_hook_response({"cards": [_card_with(_update("ServiceRequest", "1", *AUTH))]})
    (decision,) = coverage_decisions(response, ["ServiceRequest/1"])
    assert (decision.origin, decision.covered, decision.pa_needed) == ("card-suggestion", "covered", "auth-needed")
    assert decision.questionnaires == ("http://q/1",) and decision.doc_needed == ("clinical",)
    assert [i.rule for i in decision.issues] == ["resp-25"]


def test_ri_copies_in_both_places_are_counted_once() -> None:
    copy = _update("ServiceRequest", "1", *AUTH)
    response = parse_hook_response({"cards": [_card_with(copy)], "systemActions": [copy, copy]})
    (decision,) = coverage_decisions(response)
    assert len(decision.information) == 1 and decision.coverage_assertion_ids == ("CA-1",)


def test_placeholder_id_matches_the_one_order_of_its_type() -> None:
    response = parse_hook_response({"cards": [], "systemActions": [_update("ServiceRequest", "idfromcontext",
                                                                           *NO_AUTH)]})
    decisions = coverage_decisions(response, ["ServiceRequest/2468", "DeviceRequest/7"])
    assert [(d.order, d.covered) for d in decisions] == [("ServiceRequest/2468", "covered"), ("DeviceRequest/7", None)]
    assert coverage_decisions(response)[0].order == "ServiceRequest/idfromcontext"


def test_placeholder_with_two_orders_of_its_type_is_not_guessed() -> None:
    response = parse_hook_response({"cards": [], "systemActions": [_update("ServiceRequest", None, *NO_AUTH)]})
    decisions = coverage_decisions(response, ["ServiceRequest/a", "ServiceRequest/b"])
    assert [d.order for d in decisions] == ["ServiceRequest/a", "ServiceRequest/b", "ServiceRequest/idfromcontext"]
    assert [i.rule for i in decisions[2].issues] == ["target"]


def test_expected_orders_without_an_answer_are_flagged() -> None:
    (decision,) = coverage_decisions(parse_hook_response({"cards": []}), ["ServiceRequest/9"])
    assert (decision.covered, decision.pa_needed, decision.doc_needed, decision.origin) == (None, None, (), None)
    assert [(i.rule, i.path) for i in decision.issues] == [("hook-16", "ServiceRequest/9")]
    assert "sent no coverage-information" in decision.issues[0].message


def test_appointment_based_on_a_service_request_reports_the_service_request() -> None:
    appointment = {"resourceType": "Appointment", "id": "ap-1", "status": "proposed",
                   "basedOn": [{"reference": "http://ehr.example/fhir/ServiceRequest/sr-5"}]}
    response = parse_hook_response({"cards": [], "systemActions": [_update("ServiceRequest", "sr-5", *NO_AUTH)]})
    (decision,) = coverage_decisions(response, [appointment])
    assert (decision.order, decision.appointment, decision.covered) == ("ServiceRequest/sr-5", "Appointment/ap-1",
                                                                        "covered")
    plain = {"resourceType": "Appointment", "id": "ap-2"}
    assert [d.order for d in coverage_decisions(response, [plain])] == ["Appointment/ap-2", "ServiceRequest/sr-5"]


def test_repetitions_aggregate_to_the_most_demanding_answer() -> None:
    two = {"resourceType": "ServiceRequest", "id": "1", "extension": [
        _ext(*BASE, *NO_AUTH), _ext(*BASE[:2], {"url": "coverage-assertion-id", "valueString": "CA-2"}, *AUTH)]}
    response = parse_hook_response({"cards": [], "systemActions": [{"type": "update", "resource": two}]})
    (decision,) = coverage_decisions(response)
    assert (decision.covered, decision.pa_needed, decision.doc_needed) == ("covered", "auth-needed", ("clinical",))
    assert decision.coverage_assertion_ids == ("CA-1", "CA-2")


def test_indeterminate_is_our_own_technical_answer() -> None:
    decision = indeterminate("ServiceRequest/1", "CRD did not answer within 5 s", coverage="Coverage/c",
                             on=date(2026, 12, 1))
    (info,) = decision.information
    assert (decision.covered, decision.pa_needed, decision.doc_needed) == (
        "indeterminate", "indeterminate", ("indeterminate",))
    assert [(r.system, r.code, r.text) for r in decision.reasons] == [
        (CRD_TEMP, "technical", "CRD did not answer within 5 s")]
    assert decision.from_payer is False and decision.origin == "client"
    assert info.date == "2026-12-01" and (info.coverage_assertion_id or "").startswith("local-")
    assert check_coverage_information(info) == []
    other = indeterminate("ServiceRequest/1", "timeout")
    assert other.coverage_assertion_ids != decision.coverage_assertion_ids
    assert [i.rule for i in check_coverage_information(replace(info, coverage=None))] == ["cardinality"]

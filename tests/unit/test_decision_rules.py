"""parse_response on hand-built responses: each status rule, each review-action shape, items and addItems,
errors, information requests, and input that is not a PAS response at all."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fhir_pa.errors import InvalidResponse
from fhir_pa.pas import codes
from fhir_pa.pas.decision import (
    Coding,
    DecisionStatus,
    ItemStatus,
    Period,
    Quantity,
    decision_as_json,
    parse_response,
)

X12_306 = "https://codesystem.x12.org/005010/306"
RI_306 = "https://valueset.x12.org/x217/005010/response/2000F/HCR/1/01/00/306"
SUBMITTED = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "submitted"}]}

Json = dict[str, Any]


def review(code: str, *, system: str = X12_306, number: str | None = None, reasons: tuple[str, ...] = (),
           code_url: str = codes.EXT_REVIEW_ACTION_CODE) -> Json:
    """An extension-reviewAction as PAS 2.2.1 writes it."""
    parts: list[Json] = [{"url": code_url, "valueCodeableConcept": {"coding": [{"system": system, "code": code}]}}]
    if number:
        parts.append({"url": "number", "valueString": number})
    parts += [{"url": "reasonCode", "valueCodeableConcept": {"coding": [
        {"system": "https://codesystem.x12.org/external/886", "code": r}]}} for r in reasons]
    return {"url": codes.EXT_REVIEW_ACTION, "extension": parts}


def item(sequence: int, code: str, **extra: Any) -> Json:
    return {"itemSequence": sequence, "adjudication": [{"extension": [review(code)], "category": SUBMITTED}],
            **extra}


def add_item(sequences: list[int], product: str = "99213", code: str = "A1", **extra: Any) -> Json:
    return {"itemSequence": sequences, "productOrService": {"coding": [{"code": product}]},
            "adjudication": [{"extension": [review(code)], "category": SUBMITTED}], **extra}


def bundle(*items: Json, outcome: str = "complete", **fields: Any) -> Json:
    response: Json = {"resourceType": "ClaimResponse", "id": "cr1", "outcome": outcome, **fields}
    if items:
        response["item"] = list(items)
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": "http://payer.example/fhir/ClaimResponse/cr1", "resource": response}]}


def actions(*codes_: str) -> Json:
    return bundle(*(item(n, c) for n, c in enumerate(codes_, start=1)))


# -- overall status ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("codes_", "status"), [
    (("A1",), DecisionStatus.APPROVED),
    (("A1", "A1"), DecisionStatus.APPROVED),
    (("A3",), DecisionStatus.DENIED),
    (("A3", "A3"), DecisionStatus.DENIED),
    (("A4",), DecisionStatus.PENDED),
    (("A1", "A4"), DecisionStatus.PENDED),
    (("A4", "A3"), DecisionStatus.PENDED),
    (("A4", "ZZ"), DecisionStatus.PENDED),
    (("A1", "A3"), DecisionStatus.PARTIAL),
    (("A2",), DecisionStatus.PARTIAL),
    (("A1", "A2"), DecisionStatus.PARTIAL),
    (("A6", "A3"), DecisionStatus.PARTIAL),
    (("A6",), DecisionStatus.MODIFIED),
    (("A6", "A1"), DecisionStatus.MODIFIED),
    (("C",), DecisionStatus.CANCELLED),
    (("C", "C"), DecisionStatus.CANCELLED),
    (("C", "NA"), DecisionStatus.CANCELLED),
    (("A1", "C"), DecisionStatus.APPROVED),  # an item cancelled by an update does not change the rest
    (("A3", "C"), DecisionStatus.DENIED),
    (("A1", "NA"), DecisionStatus.APPROVED),
    (("NA",), DecisionStatus.UNKNOWN),
    (("CT",), DecisionStatus.UNKNOWN),
    (("A1", "CT"), DecisionStatus.UNKNOWN),
    (("A1", "ZZ"), DecisionStatus.UNKNOWN),
    ((), DecisionStatus.UNKNOWN),
])
def test_overall_status(codes_: tuple[str, ...], status: DecisionStatus) -> None:
    decision = parse_response(actions(*codes_))
    assert decision.status is status
    assert decision.final is (status not in (DecisionStatus.PENDED, DecisionStatus.UNKNOWN))


@pytest.mark.parametrize(("code", "status"), [
    ("A1", ItemStatus.APPROVED), ("A2", ItemStatus.PARTIAL), ("A3", ItemStatus.DENIED), ("A4", ItemStatus.PENDED),
    ("A6", ItemStatus.MODIFIED), ("C", ItemStatus.CANCELLED), ("CT", ItemStatus.CONTACT_PAYER),
    ("NA", ItemStatus.NO_ACTION), ("86", ItemStatus.UNKNOWN),
])
def test_item_status_per_x12_306_code(code: str, status: ItemStatus) -> None:
    (decided,) = parse_response(actions(code)).items
    assert (decided.review_action, decided.status) == (code, status)


def test_unknown_code_is_kept_and_explained() -> None:
    decision = parse_response(actions("ZZ"))
    assert decision.items[0].review_action == "ZZ"
    assert any("'ZZ'" in w and "not an X12 306 code" in w for w in decision.warnings)


def test_errors_win_over_item_decisions() -> None:
    with_error_list = bundle(item(1, "A1"), error=[{"code": {"coding": [{"code": "04"}]}}])
    assert parse_response(with_error_list).status is DecisionStatus.ERROR
    assert parse_response(bundle(item(1, "A4"), outcome="error")).status is DecisionStatus.ERROR


def test_error_outcome_without_errors_is_an_error_with_a_warning() -> None:
    decision = parse_response(bundle(outcome="error"))
    assert decision.status is DecisionStatus.ERROR and decision.final
    assert "outcome is 'error' but the ClaimResponse lists no error" in decision.warnings


def test_queued_outcome_never_means_pended() -> None:
    decision = parse_response(bundle(item(1, "A1"), outcome="queued"))
    assert decision.status is DecisionStatus.APPROVED
    assert any("outcome 'queued' is 2.0.1-era" in w for w in decision.warnings)
    assert parse_response(bundle(outcome="queued")).status is DecisionStatus.UNKNOWN


@pytest.mark.parametrize(("code", "status"), [("A1", DecisionStatus.APPROVED), ("A4", DecisionStatus.PENDED),
                                              ("A3", DecisionStatus.DENIED)])
def test_without_items_the_claim_response_level_review_action_decides(code: str, status: DecisionStatus) -> None:
    decision = parse_response(bundle(adjudication=[{"extension": [review(code, number="REQ-9")],
                                                    "category": SUBMITTED}]))
    assert (decision.status, decision.review_action) == (status, code)
    assert decision.preauth_ref == "REQ-9"  # the whole-request review number, when there is no preAuthRef


def test_claim_response_level_action_that_disagrees_with_items_is_reported() -> None:
    decision = parse_response(bundle(item(1, "A1"), adjudication=[{"extension": [review("A3")]}]))
    assert decision.status is DecisionStatus.APPROVED
    assert any("disagrees with its items" in w for w in decision.warnings)


# -- review action shapes --------------------------------------------------------------------------------


def test_reference_implementation_system_is_matched_by_value() -> None:
    response = bundle({"itemSequence": 1, "adjudication": [{"extension": [review("A3", system=RI_306)]}]})
    decision = parse_response(response)
    assert decision.status is DecisionStatus.DENIED
    assert decision.warnings == ()  # the system is not checked, so nothing to warn about


@pytest.mark.parametrize("code_url", ["reviewActionCode", "code"])
def test_relative_review_action_code_urls_are_read_with_a_warning(code_url: str) -> None:
    response = bundle({"itemSequence": 1, "adjudication": [{"extension": [review("A1", code_url=code_url)]}]})
    decision = parse_response(response)
    assert decision.status is DecisionStatus.APPROVED
    assert any(f"{code_url!r}" in w and codes.EXT_REVIEW_ACTION_CODE in w for w in decision.warnings)


def test_legacy_review_action_code_directly_on_the_adjudication() -> None:
    legacy = {"url": codes.EXT_REVIEW_ACTION_CODE, "valueCodeableConcept": {"coding": [{"code": "A3"}]}}
    decision = parse_response(bundle({"itemSequence": 1, "adjudication": [{"extension": [legacy]}]}))
    assert (decision.status, decision.items[0].review_action) == (DecisionStatus.DENIED, "A3")


def test_reference_implementation_review_action_on_the_item_itself() -> None:
    ri_item = {"itemSequence": 1, "extension": [review("A1", system=RI_306, number="RI-NUMBER")],
               "adjudication": [{"category": SUBMITTED}]}
    decision = parse_response(bundle(ri_item))
    assert (decision.status, decision.items[0].auth_number) == (DecisionStatus.APPROVED, "RI-NUMBER")
    assert any("not on its adjudication" in w for w in decision.warnings)


def test_old_reference_implementation_pend_with_a_bare_value_on_the_claim_response() -> None:
    response = bundle(outcome="queued", disposition="Pending", preAuthRef="ri-1",
                      extension=[{"url": codes.EXT_REVIEW_ACTION, "valueString": "A4"}])
    decision = parse_response(response)
    assert (decision.status, decision.review_action, decision.preauth_ref) == (DecisionStatus.PENDED, "A4", "ri-1")
    assert decision.disposition == "Pending"


def test_codes_are_normalised_and_the_first_x12_coding_wins() -> None:
    codings = {"coding": [{"system": "http://payer.example/local", "code": "OK"}, {"code": " a1 "}]}
    extension = {"url": codes.EXT_REVIEW_ACTION, "extension": [
        {"url": codes.EXT_REVIEW_ACTION_CODE, "valueCodeableConcept": codings}]}
    decision = parse_response(bundle({"itemSequence": 1, "adjudication": [{"extension": [extension]}]}))
    assert decision.items[0].review_action == "A1"


def test_several_review_actions_prefer_the_submitted_adjudication() -> None:
    two = {"itemSequence": 1, "adjudication": [{"extension": [review("A3")]},
                                                {"extension": [review("A1")], "category": SUBMITTED}]}
    decision = parse_response(bundle(two))
    assert decision.items[0].review_action == "A1"
    assert any("several review actions" in w for w in decision.warnings)


# -- item details ----------------------------------------------------------------------------------------


def test_item_details() -> None:
    detailed = {
        "itemSequence": 2,
        "noteNumber": [1],
        "extension": [
            {"url": codes.extension("itemPreAuthPeriod"), "valuePeriod": {"start": "2026-01-01", "end": "2026-03-31"}},
            {"url": codes.extension("itemPreAuthIssueDate"), "valueDate": "2025-12-30"},
            {"url": codes.extension("administrationReferenceNumber"), "valueString": "REF-7"},
        ],
        "adjudication": [{"extension": [review("A3", number="N-1", reasons=("0U",))], "category": SUBMITTED}],
    }
    decision = parse_response(bundle(detailed, processNote=[{"number": 1, "type": "display",
                                                             "text": "Not medically necessary."}]))
    (decided,) = decision.items
    assert decided.sequence == 2
    assert decided.auth_number == "N-1"
    assert decided.administration_reference == "REF-7"
    assert decided.validity == Period("2026-01-01", "2026-03-31")
    assert decided.issue_date == "2025-12-30"
    assert decided.reason_codes == (Coding("https://codesystem.x12.org/external/886", "0U", None),)
    assert decided.notes == ("Not medically necessary.",)


def test_auth_number_falls_back_to_the_item_authorization_number_extension() -> None:
    numbered = item(1, "A1", extension=[{"url": codes.extension("authorizationNumber"), "valueString": "AUTH-X"}])
    assert parse_response(bundle(numbered)).items[0].auth_number == "AUTH-X"


def test_note_number_without_a_process_note_is_reported() -> None:
    decision = parse_response(bundle(item(1, "A3", noteNumber=[4])))
    assert decision.items[0].notes == ()
    assert any("processNote 4" in w for w in decision.warnings)


def test_add_items_attach_by_sequence_or_stand_alone() -> None:
    response = bundle(
        item(1, "A6"), item(2, "A6"),
        addItem=[
            add_item([1, 2], product="E0601", quantity={"value": 2, "unit": "month"}, servicedDate="2026-02-01",
                     extension=[{"url": codes.extension("itemPreAuthPeriod"),
                                 "valuePeriod": {"start": "2026-02-01", "end": "2026-03-31"}},
                                {"url": codes.extension("authorizationNumber"), "valueString": "AUTH-ADD"}]),
            add_item([9], product="97110"),
            add_item([], product="97112"),
        ])
    decision = parse_response(response)
    assert decision.status is DecisionStatus.MODIFIED
    shared = decision.items[0].authorized
    assert shared == decision.items[1].authorized and len(shared) == 1
    (authorized,) = shared
    assert authorized.quantity == Quantity(2, "month")
    assert authorized.serviced == Period("2026-02-01", "2026-02-01")
    assert authorized.validity == Period("2026-02-01", "2026-03-31")
    assert authorized.auth_number == "AUTH-ADD"
    assert [a.product_or_service[0].code for a in decision.added_items] == ["97110", "97112"]
    assert [a.item_sequences for a in decision.added_items] == [(9,), ()]


def test_a6_without_an_add_item_is_reported() -> None:
    decision = parse_response(actions("A6"))
    assert decision.status is DecisionStatus.MODIFIED
    assert any("no addItem says what was authorized" in w for w in decision.warnings)


# -- errors ----------------------------------------------------------------------------------------------


def test_error_with_2_2_error_element_and_process_note() -> None:
    error = {"itemSequence": 3, "detailSequence": 1,
             "code": {"coding": [{"system": "https://codesystem.x12.org/005010/901", "code": "15",
                                  "display": "Required application data missing"}]},
             "extension": [
                 {"url": codes.extension("errorElement"), "extension": [{"url": "error", "valueString": "2000F-UM"},
                                                                       {"url": "processNote", "valuePositiveInt": 2}]},
                 {"url": codes.extension("errorPath"), "valueString": "Bundle.entry[0].resource.item[2]"},
                 {"url": codes.extension("errorFollowupAction"), "valueCodeableConcept": {"coding": [{"code": "C"}]}},
             ]}
    decision = parse_response(bundle(outcome="error", error=[error],
                                     processNote=[{"number": 2, "text": "Service code is missing."}]))
    (found,) = decision.errors
    assert (found.code, found.display) == ("15", "Required application data missing")
    assert (found.path, found.element, found.followup) == ("Bundle.entry[0].resource.item[2]", "2000F-UM", "C")
    assert found.note == "Service code is missing."
    assert (found.item_sequence, found.detail_sequence, found.subdetail_sequence) == (3, 1, None)


# -- correlation and information requests -----------------------------------------------------------------


def test_correlation_fields() -> None:
    response = bundle(item(1, "A1"), preAuthRef="PA-1", preAuthPeriod={"start": "2026-01-01", "end": "2026-06-30"},
                      request={"reference": "urn:uuid:9f0c", "identifier": {"system": "urn:trn", "value": "T1"}},
                      identifier=[{"system": "urn:trn", "value": "T1"}, {"value": "X9"}],
                      created="2026-01-01T10:00:00Z")
    response["identifier"] = {"value": "BUNDLE-1"}
    decision = parse_response(response)
    assert (decision.preauth_ref, decision.preauth_period) == ("PA-1", Period("2026-01-01", "2026-06-30"))
    assert decision.request_reference == "urn:uuid:9f0c"
    assert decision.request_identifiers == ("urn:trn|T1", "X9")
    assert decision.bundle_identifier == "BUNDLE-1"
    assert decision.claim_response_full_url == "http://payer.example/fhir/ClaimResponse/cr1"
    assert decision.created == "2026-01-01T10:00:00Z"


def test_contained_and_unresolvable_communication_requests() -> None:
    contained = {"resourceType": "CommunicationRequest", "id": "cr-info", "payload": [{"contentString": "102089-0"}],
                 "medium": [{"coding": [{"code": "CDEX"}]}]}
    response = bundle(item(1, "A4"), contained=[contained],
                      communicationRequest=[{"reference": "#cr-info"}, {"reference": "CommunicationRequest/gone"}])
    decision = parse_response(response)
    found, missing = decision.information_requests
    assert (found.id, found.codes, found.medium) == ("cr-info", ("102089-0",), ("CDEX",))
    assert (missing.reference, missing.id, missing.codes) == ("CommunicationRequest/gone", None, ())
    assert any("communicationRequest[1] does not resolve" in w for w in decision.warnings)


# -- where the ClaimResponse is -------------------------------------------------------------------------


def test_claim_response_not_first_is_read_with_a_warning() -> None:
    response = actions("A1")
    response["entry"].insert(0, {"resource": {"resourceType": "Patient", "id": "p"}})
    response["entry"].append({"resource": {"resourceType": "ClaimResponse", "id": "second"}})
    decision = parse_response(response)
    assert (decision.status, decision.claim_response_id) == (DecisionStatus.APPROVED, "cr1")
    assert "the ClaimResponse is Bundle.entry[1], not the first entry" in decision.warnings
    assert "Bundle holds 2 ClaimResponses; read the first" in decision.warnings


def test_reference_implementation_notification_with_an_unaddressed_nested_bundle() -> None:
    nested = actions("A3")
    del nested["entry"][0]["fullUrl"]
    notification = {"resourceType": "Bundle", "type": "history", "entry": [
        {"resource": {"resourceType": "Parameters", "parameter": [
            {"name": "type", "valueCode": "event-notification"},
            {"name": "notification-event", "part": [
                {"name": "focus", "valueReference": {"reference": "http://payer.example/fhir/ClaimResponse/cr1"}}]}]}},
        {"resource": nested}]}
    decision = parse_response(notification)
    assert (decision.status, decision.claim_response_id) == (DecisionStatus.DENIED, "cr1")
    assert decision.warnings == ()


def test_heartbeat_notification_has_no_decision() -> None:
    heartbeat = {"resourceType": "Bundle", "type": "history", "entry": [
        {"resource": {"resourceType": "Parameters", "parameter": [{"name": "type", "valueCode": "heartbeat"}]}}]}
    with pytest.raises(InvalidResponse, match=r"subscription notification \(heartbeat\)") as caught:
        parse_response(heartbeat)
    assert caught.value.path == "Bundle.entry"


# -- input that is not a PAS response ---------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "message", "path"), [
    (b'{"resourceType": "Bundle", "ent', "ends too early (truncated?): Unterminated string", "$"),
    (b'{\n  "resourceType": "Bundle",\n  "type": "collection"\n  "entry": []\n}',
     "is not JSON: Expecting ',' delimiter at line 4 column 3", "$"),
    (b"<html><body>502 Bad Gateway</body></html>", "looks like HTML or XML", "$"),
    (b"", "is empty", None),
    (b'{"resourceType": "Bundle", "id": "\xff"}', "not UTF-8", None),
    (b"[1, 2]", "is a list in JSON, not a FHIR resource", "$"),
    (b'{"resourceType": "Patient", "id": "p"}', "is a Patient, not a PAS response Bundle", "resourceType"),
    (b'{"id": "x"}', "without a resourceType", "resourceType"),
    (b'{"resourceType": "Bundle", "type": "collection", "entry": []}', "is a Bundle without a ClaimResponse",
     "Bundle.entry"),
    (b'{"resourceType": "Bundle", "entry": "nope"}', "is a Bundle without a ClaimResponse", "Bundle.entry"),
    (b'{"resourceType": "Parameters", "parameter": [{"name": "return"}]}', "without a PAS response Bundle",
     "Parameters.parameter"),
    (b"[" * 100_000, "nested too deeply", None),
])
def test_not_a_response(raw: bytes, message: str, path: str | None) -> None:
    with pytest.raises(InvalidResponse) as caught:
        parse_response(raw, source="payer.json")
    assert caught.value.message.startswith("payer.json ")
    assert message in caught.value.message
    assert caught.value.path == path


def test_operation_outcome_names_its_first_issue() -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "processing", "diagnostics": "Member not found"},
        {"severity": "warning", "code": "informational"}]}
    with pytest.raises(InvalidResponse) as caught:
        parse_response(json.dumps(outcome))
    assert caught.value.message == ("payer returned an OperationOutcome, not a PAS response: "
                                    "error processing: Member not found")


def test_bytes_text_and_dict_inputs_agree() -> None:
    response = actions("A1", "A3")
    text = json.dumps(response)
    assert parse_response(text) == parse_response(text.encode()) == parse_response(response)
    assert parse_response(b"\xef\xbb\xbf" + text.encode()) == parse_response(response)  # UTF-8 BOM


# -- wrong types inside: skipped with a warning ----------------------------------------------------------


def test_wrong_types_inside_are_skipped_with_warnings() -> None:
    response = bundle(item(1, "A1"), item(2, "A1"))
    items = response["entry"][0]["resource"]["item"]
    items[0]["itemSequence"] = "1"
    items[1]["adjudication"][0]["extension"] = "A1"
    response["entry"][0]["resource"]["processNote"] = [1, None]
    response["entry"][0]["resource"]["addItem"] = 3
    decision = parse_response(response)
    assert [i.sequence for i in decision.items] == [1, 2]
    assert [i.status for i in decision.items] == [ItemStatus.APPROVED, ItemStatus.UNKNOWN]
    assert decision.status is DecisionStatus.UNKNOWN
    assert "ClaimResponse.item[0].itemSequence is a string, not a number; read as a number" in decision.warnings
    assert "ClaimResponse.item[1].adjudication[0].extension is a string, not a list; ignored" in decision.warnings
    assert "ClaimResponse.processNote[0] is a number, not an object; ignored" in decision.warnings
    assert "ClaimResponse.addItem is a number, not a list; ignored" in decision.warnings


def test_a_single_object_where_a_list_belongs_is_read_as_a_list_of_one() -> None:
    response = bundle()
    response["entry"][0]["resource"]["item"] = item(1, "A3")
    decision = parse_response(response)
    assert decision.status is DecisionStatus.DENIED
    assert "ClaimResponse.item is a single object, not a list; read as a list of one" in decision.warnings


def test_json_view_shape() -> None:
    view = decision_as_json(parse_response(bundle(item(1, "A6"), addItem=[add_item([1])],
                                                  error=[{"code": {"coding": [{"code": "T4"}]}}])))
    assert list(view) == ["status", "final", "preauth_ref", "preauth_period", "review_action", "outcome",
                          "disposition", "items", "added_items", "errors", "information_requests",
                          "claim_response_id", "claim_response_full_url", "request_reference",
                          "request_identifiers", "bundle_identifier", "created", "warnings"]
    (first,) = view["items"]
    assert list(first)[:4] == ["sequence", "review_action", "status", "auth_number"]
    assert {"validity", "reasons", "authorized"} <= set(first)
    assert first["authorized"][0]["product_or_service"] == [{"system": None, "code": "99213", "display": None}]
    assert list(view["errors"][0])[:4] == ["code", "path", "element", "followup"]
    assert json.loads(json.dumps(view)) == view

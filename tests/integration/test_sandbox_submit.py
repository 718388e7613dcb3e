"""``Claim/$submit`` on the sandbox over a real loopback port: decisions per rule, the response Bundle,
refusals with OperationOutcomes, and idempotency by request identifier."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from fhir_pa.auth.keys import SigningKey
from fhir_pa.pas.bundle import build_request_bundle
from fhir_pa_sandbox.demo_orders import CASES, demo_order
from fhir_pa_sandbox.server import SandboxServer
from tests.integration.conftest import stats
from tests.integration.pas_bundles import Service, bundle_key, request_bundle
from tests.integration.sandbox_helpers import FHIR_JSON, get_token, new_client, submit

pytestmark = pytest.mark.integration

Json = dict[str, Any]
SD = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition"
REVIEW_ACTION = f"{SD}/extension-reviewAction"
REVIEW_ACTION_CODE = f"{SD}/extension-reviewActionCode"


@pytest.fixture
def token(sandbox: SandboxServer, client_key: SigningKey) -> str:
    return get_token(sandbox, client_key, new_client(sandbox, client_key))


def _decided(sandbox: SandboxServer, token: str, bundle: Json) -> Json:
    response = submit(sandbox, token, bundle)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    result: Json = response.json()
    return result


def _claim_response(response_bundle: Json) -> Json:
    first: Json = response_bundle["entry"][0]["resource"]
    assert first["resourceType"] == "ClaimResponse"
    return first


def _review(adjudications: list[Json]) -> dict[str, Any]:
    """The reviewAction parts of the ``submitted`` adjudication, by sub-extension url."""
    [submitted] = [a for a in adjudications
                   if a["category"]["coding"][0] == {"system": "http://terminology.hl7.org/CodeSystem/adjudication",
                                                     "code": "submitted"}]
    [action] = [e for e in submitted["extension"] if e["url"] == REVIEW_ACTION]
    return {part["url"]: part for part in action["extension"]}


def _code(review: dict[str, Any]) -> str:
    coding = review[REVIEW_ACTION_CODE]["valueCodeableConcept"]["coding"][0]
    assert coding["system"] == "https://codesystem.x12.org/005010/306"
    return str(coding["code"])


def _extension(holder: Json, name: str) -> Any:
    found = [e for e in holder.get("extension", []) if e["url"] == f"{SD}/extension-{name}"]
    return found[0] if found else None


# --- one decision per rule ---------------------------------------------------------------------------


def test_approve_gives_a1_number_and_validity_from_the_service_date(sandbox: SandboxServer, token: str) -> None:
    result = _decided(sandbox, token, request_bundle(Service("72148", service_date="2026-12-03")))
    claim_response = _claim_response(result)
    [item] = claim_response["item"]
    review = _review(item["adjudication"])
    assert _code(review) == "A1"
    assert review["number"]["valueString"].startswith("AUTH-")
    assert _extension(item, "itemPreAuthPeriod")["valuePeriod"] == {
        "start": "2026-12-03", "end": (date(2026, 12, 3) + timedelta(days=59)).isoformat()}  # 72148: 60 days
    assert claim_response["outcome"] == "complete"
    assert claim_response["preAuthRef"].startswith("PA-")


def test_deny_gives_a3_with_x12_reason_and_note(sandbox: SandboxServer, token: str) -> None:
    claim_response = _claim_response(_decided(sandbox, token, request_bundle("97110")))
    [item] = claim_response["item"]
    review = _review(item["adjudication"])
    assert _code(review) == "A3"
    reason = review["reasonCode"]["valueCodeableConcept"]["coding"][0]
    assert reason["system"] == "https://codesystem.x12.org/external/886" and reason["code"]
    [note] = claim_response["processNote"]
    assert item["noteNumber"] == [note["number"]] and "medical necessity" in note["text"]
    assert "preAuthRef" not in claim_response and claim_response["outcome"] == "complete"


def test_pend_gives_a4_and_an_administration_reference(sandbox: SandboxServer, token: str) -> None:
    claim_response = _claim_response(_decided(sandbox, token, request_bundle("27447")))
    [item] = claim_response["item"]
    assert _code(_review(item["adjudication"])) == "A4"
    assert _extension(item, "administrationReferenceNumber")["valueString"].startswith("PEND-")
    assert claim_response["outcome"] == "complete"  # PAS 2.2: a pend is complete + A4, never queued


def test_modify_gives_a6_and_an_add_item_with_the_same_sequence(sandbox: SandboxServer, token: str) -> None:
    bundle = request_bundle("72148", Service("E0601", system="http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
                                             quantity=2))
    claim_response = _claim_response(_decided(sandbox, token, bundle))
    modified = [i for i in claim_response["item"] if i["itemSequence"] == 2]
    assert _code(_review(modified[0]["adjudication"])) == "A6"
    [added] = claim_response["addItem"]
    assert added["itemSequence"] == [2]
    assert added["productOrService"]["coding"][0] == {
        "system": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "code": "E0601"}
    assert added["modifier"][0]["coding"][0]["code"] == "RR"
    assert added["quantity"] == {"value": 1, "unit": "month"}
    review = _review(added["adjudication"])
    assert _code(review) == "A1" and review["number"]["valueString"].startswith("AUTH-")


def test_error_rule_gives_outcome_error_pointing_into_the_request(sandbox: SandboxServer, token: str) -> None:
    claim_response = _claim_response(_decided(sandbox, token, request_bundle("72148", "99999")))
    assert claim_response["outcome"] == "error"
    [error] = claim_response["error"]
    assert error["itemSequence"] == 2
    assert error["code"]["coding"][0]["system"] == "https://codesystem.x12.org/005010/901"
    assert _extension(error, "errorPath")["valueString"] == "Bundle.entry[0].resource.item[1].productOrService"
    assert _extension(error, "errorFollowupAction")["valueCodeableConcept"]["coding"][0]["code"] == "C"
    assert [i["itemSequence"] for i in claim_response["item"]] == [1]  # the other item is still decided


def test_unknown_code_gets_the_default_rule(sandbox: SandboxServer, token: str) -> None:
    claim_response = _claim_response(_decided(sandbox, token, request_bundle("12345")))
    assert _code(_review(claim_response["item"][0]["adjudication"])) == "A1"


# --- the response Bundle -----------------------------------------------------------------------------


def test_response_bundle_echoes_the_request(sandbox: SandboxServer, token: str) -> None:
    bundle = request_bundle("72148", "97110", "27447")
    result = _decided(sandbox, token, bundle)
    assert result["resourceType"] == "Bundle" and result["type"] == "collection"
    assert result["identifier"]["value"] and result["timestamp"]
    assert result["meta"]["profile"] == [f"{SD}/profile-pas-response-bundle"]
    claim_response = _claim_response(result)
    assert claim_response["meta"]["profile"] == [f"{SD}/profile-claimresponse"]
    assert claim_response["status"] == "active" and claim_response["use"] == "preauthorization"
    assert result["entry"][0]["fullUrl"] == f"{sandbox.fhir_base}/ClaimResponse/{claim_response['id']}"

    claim_entry = bundle["entry"][0]
    claim = claim_entry["resource"]
    assert claim_response["request"] == {"reference": claim_entry["fullUrl"], "identifier": claim["identifier"][0]}
    assert claim_response["identifier"] == claim["identifier"]
    assert claim_response["type"] == claim["type"]
    assert [i["itemSequence"] for i in claim_response["item"]] == [1, 2, 3]

    echoed = {entry["fullUrl"]: entry["resource"] for entry in result["entry"][1:]}
    request_entries = {entry["fullUrl"]: entry["resource"] for entry in bundle["entry"]}
    for element in ("patient", "insurer", "requestor"):
        target = claim_response[element]["reference"]
        assert echoed[target] == request_entries[target], element  # same fullUrl, same resource
    assert claim_entry["fullUrl"] not in echoed  # the Claim itself is not echoed
    assert claim_response["patient"]["reference"] == claim["patient"]["reference"]
    assert claim_response["requestor"]["reference"] == claim["provider"]["reference"]


def test_stored_claim_response_can_be_read(sandbox: SandboxServer, token: str) -> None:
    claim_response = _claim_response(_decided(sandbox, token, request_bundle("27447")))
    headers = {"Authorization": f"Bearer {token}"}
    read = httpx.get(f"{sandbox.fhir_base}/ClaimResponse/{claim_response['id']}", headers=headers)
    assert read.status_code == 200 and read.json() == claim_response
    missing = httpx.get(f"{sandbox.fhir_base}/ClaimResponse/no-such-id", headers=headers)
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("case", list(CASES))
def test_bundles_from_the_client_builder_get_the_rule_decision(case: str, sandbox: SandboxServer,
                                                               token: str) -> None:
    request = build_request_bundle(demo_order(case))
    claim_response = _claim_response(_decided(sandbox, token, request.bundle))
    expected = {"approved": "A1", "denied": "A3", "pended": "A4", "modified": "A6"}[CASES[case][2]]
    assert _code(_review(claim_response["item"][0]["adjudication"])) == expected
    assert claim_response["request"]["reference"] == request.claim_full_url


# --- refusals -----------------------------------------------------------------------------------------


def _outcome(response: httpx.Response, status: int) -> list[Json]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issues: list[Json] = outcome["issue"]
    assert issues and all(i["severity"] in ("error", "fatal", "warning") for i in issues)
    return issues


def test_bundle_breaking_pas_rules_is_400_with_paths(sandbox: SandboxServer, token: str) -> None:
    bundle = request_bundle("72148", "97110")
    del bundle["entry"][0]["resource"]["patient"]
    bundle["entry"][0]["resource"]["item"][1]["servicedDate"] = "2026-12"
    bundle["entry"][3]["fullUrl"] = "not-a-url"
    issues = _outcome(submit(sandbox, token, bundle), 400)
    codes: dict[str, set[str]] = {}
    for issue in issues:
        for path in issue.get("expression", []):
            codes.setdefault(path, set()).add(issue["code"])
    assert codes["Bundle.entry[0].resource.patient"] == {"required"}
    assert "Bundle.entry[0].resource.item[1].servicedDate" in codes
    assert "Bundle.entry[3].fullUrl" in codes
    assert all(i["diagnostics"] for i in issues)
    assert stats(sandbox)["by_identifier"][bundle_key(bundle)] == {  # type: ignore[index]
        "received": 1, "decided": 0, "duplicates": 0, "rejected": 1}


@pytest.mark.parametrize(("body", "content_type", "status", "code"), [
    (b'{"resourceType": "Bundle", "entry": [', FHIR_JSON, 400, "structure"),
    (b'{"resourceType": "Patient"}', FHIR_JSON, 400, "structure"),
    (b"[1, 2]", "application/json", 400, "structure"),
    (b"<Bundle/>", "application/fhir+xml", 415, "not-supported"),
])
def test_unreadable_bodies_are_refused_with_an_outcome(body: bytes, content_type: str, status: int, code: str,
                                                       sandbox: SandboxServer, token: str) -> None:
    issues = _outcome(submit(sandbox, token, body, content_type=content_type), status)
    assert issues[0]["code"] == code


def test_plain_application_json_is_accepted(sandbox: SandboxServer, token: str) -> None:
    response = submit(sandbox, token, request_bundle(), content_type="application/json; charset=utf-8")
    assert response.status_code == 200


# --- idempotency --------------------------------------------------------------------------------------


def test_resubmission_gets_the_stored_response_and_no_new_decision(sandbox: SandboxServer, token: str) -> None:
    bundle = request_bundle("72148")
    first = submit(sandbox, token, bundle)
    again = submit(sandbox, token, bundle)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()  # same ClaimResponse id, same authorization number
    assert stats(sandbox)["by_identifier"][bundle_key(bundle)] == {  # type: ignore[index]
        "received": 2, "decided": 1, "duplicates": 1, "rejected": 0}


def test_reserialized_resubmission_of_the_same_claim_is_a_duplicate(sandbox: SandboxServer, token: str) -> None:
    bundle = request_bundle("97110")
    first = submit(sandbox, token, bundle).json()
    changed = copy.deepcopy(bundle)
    changed["timestamp"] = "2026-11-20T10:05:00Z"  # rebuilt copy of the same request
    assert submit(sandbox, token, changed).json() == first
    counts = stats(sandbox)["by_identifier"][bundle_key(bundle)]  # type: ignore[index]
    assert counts["decided"] == 1 and counts["duplicates"] == 1


def test_identifier_reused_for_another_claim_is_refused(sandbox: SandboxServer, token: str) -> None:
    bundle = request_bundle("72148")
    assert submit(sandbox, token, bundle).status_code == 200
    other = request_bundle("97110", bundle_value=bundle["identifier"]["value"])
    issues = _outcome(submit(sandbox, token, other), 400)
    assert issues[0]["code"] == "duplicate" and issues[0]["expression"] == ["Bundle.identifier"]
    counts = stats(sandbox)["by_identifier"][bundle_key(bundle)]  # type: ignore[index]
    assert counts == {"received": 2, "decided": 1, "duplicates": 0, "rejected": 1}


async def test_concurrent_copies_are_decided_once(sandbox: SandboxServer, token: str) -> None:
    bundle = request_bundle("72148", "27447")
    body = json.dumps(bundle).encode()
    headers = {"Content-Type": FHIR_JSON, "Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient() as http:
        answers = await asyncio.gather(*(http.post(f"{sandbox.fhir_base}/Claim/$submit", content=body,
                                                   headers=headers) for _ in range(8)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["entry"][0]["resource"]["id"] for a in answers}) == 1
    counts = stats(sandbox)["by_identifier"][bundle_key(bundle)]  # type: ignore[index]
    assert counts == {"received": 8, "decided": 1, "duplicates": 7, "rejected": 0}

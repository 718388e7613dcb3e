"""The in-memory FHIR store, its search semantics, and the EHR client helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_pa.errors import ConfigurationError, InputError
from fhir_pa.fhir.datasource import check_base_url, fhir_client, memory_async_client, memory_client
from fhir_pa.fhir.memory import MemoryFhirServer
from fhir_pa.fhir.search import SearchError, parse_search, reference_matches, reference_target, search_bundle

BASE = "http://ehr.test/fhir"


def chart() -> list[dict[str, Any]]:
    """A small synthetic chart: two patients, coverages, orders and practitioners."""
    return [
        {"resourceType": "Patient", "id": "p1", "identifier": [{"system": "urn:mrn", "value": "A1"}]},
        {"resourceType": "Patient", "id": "p2", "identifier": [{"value": "B2"}]},
        {"resourceType": "Coverage", "id": "c1", "status": "active", "beneficiary": {"reference": "Patient/p1"}},
        {"resourceType": "Coverage", "id": "c2", "status": "cancelled", "beneficiary": {"reference": "Patient/p1"}},
        {"resourceType": "Coverage", "id": "c3", "status": "active",
         "beneficiary": {"reference": f"{BASE}/Patient/p2"}},
        {"resourceType": "ServiceRequest", "id": "s1", "status": "draft", "subject": {"reference": "Patient/p1"}},
        {"resourceType": "ServiceRequest", "id": "s2", "status": "active", "subject": {"reference": "Group/p1"}},
        {"resourceType": "Practitioner", "id": "d1"},
        {"resourceType": "Practitioner", "id": "d2"},
        {"resourceType": "Practitioner", "id": "d3"},
    ]


def ids(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


@pytest.fixture
def http() -> Any:
    with memory_client(MemoryFhirServer(chart(), base_url=BASE)) as client:
        yield client


def test_read_answers_the_resource_or_a_404_outcome(http: httpx.Client) -> None:
    found = http.get("Patient/p1")
    assert found.status_code == 200
    assert found.headers["content-type"] == "application/fhir+json"
    assert found.json()["id"] == "p1"
    missing = http.get("Patient/nobody")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    assert "nobody" not in missing.text  # no ids (patient data) in error text


def test_search_answers_a_searchset_with_total_fullurl_and_match_mode(http: httpx.Client) -> None:
    bundle = http.get("Practitioner", params={"_id": "d3,d1,zz"}).json()
    assert bundle["type"] == "searchset"
    assert bundle["total"] == 2
    assert ids(bundle) == ["d1", "d3"]  # store order, OR across the comma list
    assert [entry["fullUrl"] for entry in bundle["entry"]] == [f"{BASE}/Practitioner/d1", f"{BASE}/Practitioner/d3"]
    assert {entry["search"]["mode"] for entry in bundle["entry"]} == {"match"}
    assert bundle["link"][0]["relation"] == "self"


def test_patient_subject_and_beneficiary_match_references(http: httpx.Client) -> None:
    assert ids(http.get("Coverage?patient=p1").json()) == ["c1", "c2"]
    assert ids(http.get("Coverage?patient=Patient/p2").json()) == ["c3"]  # absolute reference in the data
    assert ids(http.get("ServiceRequest?patient=p1").json()) == ["s1"]  # Group/p1 is not a patient
    assert ids(http.get("ServiceRequest?subject=p1").json()) == ["s1", "s2"]  # bare id: any type
    assert ids(http.get("ServiceRequest?subject=Group/p1").json()) == ["s2"]
    assert ids(http.get("Coverage?beneficiary=Patient/p1&status=active").json()) == ["c1"]  # AND


def test_status_and_identifier_tokens(http: httpx.Client) -> None:
    assert ids(http.get("Coverage?status=active,cancelled").json()) == ["c1", "c2", "c3"]
    assert ids(http.get("Patient", params={"identifier": "urn:mrn|A1"}).json()) == ["p1"]
    assert ids(http.get("Patient", params={"identifier": "urn:other|A1"}).json()) == []
    assert ids(http.get("Patient", params={"identifier": "|B2"}).json()) == ["p2"]  # no system
    assert ids(http.get("Patient", params={"identifier": "|A1"}).json()) == []
    assert ids(http.get("Patient", params={"identifier": "urn:mrn|"}).json()) == ["p1"]  # any value
    assert ids(http.get("Patient", params={"identifier": "B2"}).json()) == ["p2"]  # any system


def test_count_pages_with_a_next_link(http: httpx.Client) -> None:
    first = http.get("Practitioner?_count=2").json()
    assert first["total"] == 3
    assert ids(first) == ["d1", "d2"]
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = http.get(following).json()
    assert ids(second) == ["d3"]
    assert all(link["relation"] != "next" for link in second["link"])


@pytest.mark.parametrize(("query", "parameter"), [
    ("Coverage?payor=Organization/x", "payor"),
    ("Coverage?patient:missing=true", "patient:missing"),
    ("Device?_id=", "_id"),
    ("Device?_count=many", "_count"),
])
def test_unsupported_or_empty_parameters_are_a_400_naming_them(http: httpx.Client, query: str,
                                                               parameter: str) -> None:
    response = http.get(query)
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["expression"] == [parameter]
    assert parameter.split(":")[0] in issue["diagnostics"]


def test_other_methods_and_paths_are_refused(http: httpx.Client) -> None:
    assert http.post("Patient", json={"resourceType": "Patient"}).status_code == 405
    assert http.get("http://ehr.test/other/Patient/p1").status_code == 404
    assert http.get("Patient/p1/_history/1/extra").status_code == 404


def test_bearer_check_refuses_missing_or_wrong_tokens() -> None:
    server = MemoryFhirServer(chart(), base_url=BASE, bearer="s3cret")
    with memory_client(server) as http:
        refused = http.get("Patient/p1")
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert http.get("Patient/p1", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert http.get("Patient/p1", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    decided = MemoryFhirServer(chart(), base_url=BASE,
                               bearer=lambda token: token is not None and token.startswith("ok"))
    with memory_client(decided) as http:
        assert http.get("Patient/p1", headers={"Authorization": "Bearer ok-1"}).status_code == 200
        assert http.get("Patient/p1").status_code == 401
    assert len(decided.requests) == 2


async def test_the_transport_serves_async_clients_too() -> None:
    server = MemoryFhirServer(chart(), base_url=BASE)
    async with memory_async_client(server) as http:
        response = await http.get("Coverage?patient=p1&status=active")
    with memory_client(server) as sync_http:
        assert response.json() == sync_http.get("Coverage?patient=p1&status=active").json()
    assert ids(response.json()) == ["c1"]


def test_answers_are_copies_of_the_store(http: httpx.Client) -> None:
    server = MemoryFhirServer(chart(), base_url=BASE)
    bundle = search_bundle(server.resources(), "Patient", [("_id", "p1")], base_url=BASE)
    bundle["entry"][0]["resource"]["id"] = "changed"
    stored = server.get("Patient", "p1")
    assert stored is not None
    stored["gender"] = "other"
    assert server.get("Patient", "p1") == chart()[0]


def test_loading_from_a_bundle_and_a_folder(tmp_path: Path) -> None:
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": resource} for resource in chart()[:3]]}
    assert len(MemoryFhirServer.from_bundle(bundle, base_url=BASE)) == 3
    (tmp_path / "a.json").write_text(json.dumps(bundle), encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps(chart()[7]), encoding="utf-8")
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    server = MemoryFhirServer.from_folder(tmp_path, base_url=BASE)
    assert len(server) == 4
    assert server.get("Practitioner", "d1") == chart()[7]
    (tmp_path / "c.json").write_text('{"resourceType": "Patient"}', encoding="utf-8")
    with pytest.raises(InputError) as caught:
        MemoryFhirServer.from_folder(tmp_path)
    assert caught.value.path is not None and caught.value.path.endswith("c.json.id")
    with pytest.raises(InputError):
        MemoryFhirServer.from_folder(tmp_path / "missing")
    with pytest.raises(InputError):
        MemoryFhirServer([{"resourceType": "Patient", "id": "has space"}])


def test_search_helpers() -> None:
    assert reference_target("Patient/1") == ("Patient", "1")
    assert reference_target("https://x/fhir/Patient/1/_history/2") == ("Patient", "1")
    assert reference_target("#contained") is None
    assert reference_target("urn:uuid:1234") is None
    assert reference_matches("https://x/fhir/Patient/1", "Patient/1")
    assert not reference_matches("Patient/1", "Group/1")
    assert reference_matches("Group/1", "1")
    assert parse_search([("_id", "a,,b"), ("_format", "json")]).criteria == (("_id", ("a", "b")),)
    with pytest.raises(SearchError) as caught:
        parse_search([("_id", ",")])
    assert caught.value.parameter == "_id"


def test_client_helpers_check_the_base_url() -> None:
    assert check_base_url("https://ehr.example/fhir/") == "https://ehr.example/fhir"
    with pytest.raises(ConfigurationError):
        check_base_url("ehr.example/fhir")
    with pytest.raises(ConfigurationError):
        fhir_client("ftp://ehr.example/fhir")
    with fhir_client("https://ehr.example/fhir") as client:
        assert client.headers["Accept"] == "application/fhir+json"
        assert not client.follow_redirects

"""The CRD prefetch engine: templates from discovery, tokens, %key order, resolve(), Coverage, failures."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest

from fhir_pa.crd.prefetch import PrefetchResult, aprefetch, prefetch, prefetch_flow, primary_coverage
from fhir_pa.errors import ConfigurationError, InputError
from fhir_pa.fhir.datasource import memory_async_client, memory_client
from fhir_pa.fhir.flow import run_sync
from fhir_pa.fhir.memory import MemoryFhirServer
from tests.conftest import load_fixture

BASE = "http://ehr.test/fhir"

# --- helpers -------------------------------------------------------------------------------------------------


def templates_for(discovery: Mapping[str, Any], hook: str) -> dict[str, str]:
    service = next(service for service in discovery["services"] if service["hook"] == hook)
    return dict(service["prefetch"])


def id_set(value: Any) -> set[str] | str | None:
    """Resource ids of a prefetch value: the id of a resource, the entry ids of a Bundle."""
    if value is None:
        return None
    if value["resourceType"] == "Bundle":
        return {entry["resource"]["id"] for entry in value.get("entry", [])}
    return str(value["id"])


def server_from_request(request: Mapping[str, Any], base_url: str) -> MemoryFhirServer:
    """An EHR holding every resource of a hook request's prefetch and context (the chart behind the request)."""
    server = MemoryFhirServer(base_url=base_url)
    for value in (request.get("prefetch") or {}).values():
        if value is None:
            continue
        if value["resourceType"] == "Bundle":
            server.add_bundle(value)
        else:
            server.add(value)
    for value in request["context"].values():
        if isinstance(value, Mapping) and value.get("resourceType") == "Bundle":
            server.add_bundle(value)
    return server


def run(templates: Mapping[str, str], context: Mapping[str, Any], server: MemoryFhirServer,
        **options: Any) -> PrefetchResult:
    with memory_client(server) as http:
        return prefetch(templates, context, fhir_base=server.base_url, hook=options.pop("hook", "order-sign"),
                        http=http, **options)


def filled(result: PrefetchResult, key: str) -> Any:
    """The value of ``key``, which must be there and hold data."""
    value = result.values[key]
    assert value is not None, key
    return value


def urls(server: MemoryFhirServer) -> list[str]:
    return [str(request.url) for request in server.requests]


def failing(server: MemoryFhirServer, when: Callable[[httpx.Request], httpx.Response | None]) -> httpx.Client:
    """A client on ``server`` whose answers ``when`` may replace (return None to let the store answer)."""
    def handle(request: httpx.Request) -> httpx.Response:
        return when(request) or server.handle(request)
    return httpx.Client(transport=httpx.MockTransport(handle))


def order(kind: str, rid: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": kind, "id": rid, "status": "draft", "subject": {"reference": "Patient/p1"}, **fields}


def draft_orders(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources]}


def coverage(rid: str, *, status: str = "active", patient: str = "Patient/p1", order_: int | None = None
             ) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Coverage", "id": rid, "status": status,
                                "beneficiary": {"reference": patient}}
    if order_ is not None:
        resource["order"] = order_
    return resource


# --- the Inferno complete-prefetch request, end to end --------------------------------------------------------


@pytest.mark.parametrize("discovery", ["cds-services-v220.json", "CRDServices.json"])
def test_inferno_complete_prefetch_is_reproduced_from_its_context(discovery: str) -> None:
    request = load_fixture("crd", "order-sign-request_complete-prefetch.json")
    templates = templates_for(load_fixture("crd", discovery), "order-sign")
    server = server_from_request(request, request["fhirServer"])
    result = run(templates, request["context"], server)

    assert result.omitted == {}
    assert list(result.values) == list(templates)  # exactly the advertised keys, in declared order
    assert set(result.values) == set(request["prefetch"])
    for key, expected in request["prefetch"].items():
        assert id_set(result.values[key]) == id_set(expected), key
    cov = filled(result, "coverage")
    assert cov["total"] == 1 and len(cov["entry"]) == 1
    assert cov["entry"][0]["resource"]["beneficiary"]["reference"] == f"Patient/{request['context']['patientId']}"
    assert not any(url.endswith("_id=") or "_id=&" in url for url in urls(server))


def test_inferno_prefetch_equals_queried() -> None:
    """Inferno test 11: re-running each reported query gives the same resource ids as the value we sent."""
    request = load_fixture("crd", "order-sign-request_complete-prefetch.json")
    templates = templates_for(load_fixture("crd", "cds-services-v220.json"), "order-sign")
    server = server_from_request(request, request["fhirServer"])
    result = run(templates, request["context"], server)
    assert set(result.queries) == set(result.values)
    with memory_client(server) as http:
        for key, query in result.queries.items():
            again = http.get(f"{request['fhirServer']}/{query}")
            assert again.status_code == 200, key
            assert id_set(again.json()) == id_set(result.values[key]), key


def test_ig_example_request_follows_our_documented_rules() -> None:
    """The IG's CRDServiceRequest.json is older than its own templates; our engine keeps to the rules instead.

    Its prefetch has keys ``device``/``medication`` the 2.2 discovery no longer asks for (never sent), a Coverage
    whose beneficiary is an absolute URL on another server (not ``Patient/123``: no primary coverage), and orders
    whose requester lives on yet another server (never fetched with our token, so the role keys are ``None``).
    """
    request = load_fixture("crd", "CRDServiceRequest.json")
    templates = templates_for(load_fixture("crd", "CRDServices.json"), "order-sign")
    server = server_from_request(request, request["fhirServer"])
    result = run(templates, request["context"], server)
    assert set(result.values) == set(templates)
    assert "device" not in result.values and "medication" not in result.values
    assert id_set(result.values["patient"]) == "123"
    assert id_set(result.values["encounter"]) == "987"
    assert result.values["coverage"] is None
    assert result.values["practitionerRoles"] is None
    assert all(url.startswith(request["fhirServer"]) for url in urls(server))


# --- tokens --------------------------------------------------------------------------------------------------


def test_user_tokens_come_from_the_user_id() -> None:
    server = MemoryFhirServer([{"resourceType": "Practitioner", "id": "u1"}], base_url=BASE)
    templates = {"me": "Practitioner/{{userPractitionerId}}", "role": "PractitionerRole/{{userPractitionerRoleId}}",
                 "user": "{{context.userId}}"}
    result = run(templates, {"patientId": "p1", "userId": "Practitioner/u1"}, server)
    assert id_set(result.values["me"]) == "u1"
    assert id_set(result.values["user"]) == "u1"
    assert result.values["role"] is None  # no such user token: no data, no query
    assert not any("PractitionerRole" in url for url in urls(server))
    assert run(templates, {"patientId": "p1"}, server, user_id="PractitionerRole/r9").values["me"] is None


def test_values_are_url_encoded_and_de_duplicated() -> None:
    server = MemoryFhirServer([{"resourceType": "Patient", "id": "p1",
                                "identifier": [{"system": "urn:a&b", "value": "x y"}]}], base_url=BASE)
    context = {"patientId": "p1", "mrn": "urn:a&b|x y", "ids": ["p1", "p1", "p2"]}
    result = run({"byId": "Patient?_id={{context.ids}}", "byMrn": "Patient?identifier={{context.mrn}}"},
                 context, server)
    assert result.queries["byId"] == "Patient?_id=p1,p2"
    assert result.queries["byMrn"] == "Patient?identifier=urn:a%26b%7Cx%20y"
    assert id_set(result.values["byMrn"]) == {"p1"}


def test_fhirpath_today_arithmetic_in_a_token() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "entry": []})

    templates = {"recent": "Observation?patient={{context.patientId}}&date=ge{{today() - 30 days}}"}
    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        result = prefetch(templates, {"patientId": "p1"}, fhir_base=BASE, hook="encounter-start", http=http)
    query = result.queries["recent"]
    assert query.startswith("Observation?patient=p1&date=ge20")
    assert len(query.rsplit("ge", 1)[1]) == len("2026-01-01")
    assert seen == [f"{BASE}/{query}"]


def test_a_complex_token_value_or_bad_fhirpath_omits_the_key() -> None:
    server = MemoryFhirServer(base_url=BASE)
    result = run({"a": "Patient?_id={{context.draftOrders}}", "b": "Patient?_id={{context.where(}}"},
                 {"patientId": "p1", "draftOrders": draft_orders(order("ServiceRequest", "s1"))}, server)
    assert "complex value" in result.omitted["a"]
    assert "{{context.where(}}" in result.omitted["b"]  # parse or evaluation error, named by its token
    assert result.values == {} and server.requests == []


# --- %key order and cycles -----------------------------------------------------------------------------------


def test_percent_keys_use_earlier_results_in_declared_order() -> None:
    server = MemoryFhirServer([
        {"resourceType": "Encounter", "id": "e1",
         "participant": [{"individual": {"reference": "PractitionerRole/r1"}}]},
        {"resourceType": "PractitionerRole", "id": "r1", "practitioner": {"reference": "Practitioner/d1"}},
        {"resourceType": "Practitioner", "id": "d1"},
    ], base_url=BASE)
    templates = {
        "early": "Practitioner?_id={{%roles.entry.resource.practitioner.resolve().id}}",  # refers to a later key
        "encounter": "Encounter/{{context.encounterId}}",
        "roles": "PractitionerRole?_id={{%encounter.participant.individual.resolve().ofType(PractitionerRole).id}}",
        "practitioners": "Practitioner?_id={{%roles.entry.resource.practitioner.resolve().id}}",
        "orphans": "Practitioner?_id={{%nosuchkey.id}}",
    }
    result = run(templates, {"patientId": "p1", "encounterId": "e1"}, server)
    assert "declared later" in result.omitted["early"]
    assert "nosuchkey" in result.omitted["orphans"]
    assert id_set(result.values["roles"]) == {"r1"}
    assert id_set(result.values["practitioners"]) == {"d1"}
    assert list(result.values) == ["encounter", "roles", "practitioners"]


def test_cycles_are_an_error_for_every_key_on_them() -> None:
    templates = {"a": "Patient?_id={{%b.entry.resource.id}}", "b": "Patient?_id={{%a.entry.resource.id}}",
                 "self": "Patient?_id={{%self.id}}", "after": "Patient?_id={{%a.entry.resource.id}}"}
    server = MemoryFhirServer(base_url=BASE)
    result = run(templates, {"patientId": "p1"}, server)
    assert "cycle" in result.omitted["a"] and "a → b → a" in result.omitted["a"]
    assert "cycle" in result.omitted["b"]
    assert "cycle" in result.omitted["self"]
    assert "not satisfied" in result.omitted["after"]  # depends on a failed key: not guessed
    assert result.values == {} and server.requests == []


def test_a_dependency_without_data_gives_no_data_not_a_query() -> None:
    server = MemoryFhirServer(base_url=BASE)
    templates = {"encounter": "Encounter/{{context.encounterId}}",
                 "roles": "PractitionerRole?_id={{%encounter.participant.individual.resolve().id}}"}
    result = run(templates, {"patientId": "p1"}, server)  # no encounterId in the context
    assert result.values == {"encounter": None, "roles": None}
    assert result.queries == {} and server.requests == []


# --- empty _id, resolve() ------------------------------------------------------------------------------------


def test_an_empty_id_list_is_null_and_never_queried() -> None:
    request_templates = {"devices": "Device?_id={{context.draftOrders.entry.resource.ofType(DeviceRequest)"
                                    ".code.resolve().id}}",
                         "medications": "Medication?_id={{context.draftOrders.entry.resource"
                                        ".ofType(MedicationRequest).medication.resolve().id}}"}
    server = MemoryFhirServer([{"resourceType": "Device", "id": "stray"}], base_url=BASE)
    context = {"patientId": "p1", "draftOrders": draft_orders(order("ServiceRequest", "s1"))}
    result = run(request_templates, context, server)
    assert result.values == {"devices": None, "medications": None}
    assert result.queries == {}
    assert not any("_id=" in url for url in urls(server))
    assert server.requests == []


def test_resolve_looks_in_the_context_then_earlier_results_then_the_ehr() -> None:
    in_context = order("DeviceRequest", "dr1", codeReference={"reference": "#dev"},
                       contained=[{"resourceType": "Device", "id": "dev"}],
                       performer={"reference": "ServiceRequest/s-local"})
    local_only = order("ServiceRequest", "s-local", requester={"reference": "PractitionerRole/r1"},
                       performer=[{"reference": "https://elsewhere.example/fhir/Practitioner/x"}])
    server = MemoryFhirServer([{"resourceType": "PractitionerRole", "id": "r1",
                                "practitioner": {"reference": f"{BASE}/Practitioner/d1"}},
                               {"resourceType": "Practitioner", "id": "d1"}], base_url=BASE)
    templates = {
        "contained": "Device?_id={{context.draftOrders.entry.resource.ofType(DeviceRequest).code.resolve().id}}",
        "local": "ServiceRequest?_id={{context.draftOrders.entry.resource.performer.resolve()"
                 ".ofType(ServiceRequest).id}}",
        "roles": "PractitionerRole?_id={{context.draftOrders.entry.resource.requester.resolve().id}}",
        "chained": "Practitioner?_id={{%roles.entry.resource.practitioner.resolve().id"
                   "|context.draftOrders.entry.resource.performer.resolve().ofType(Practitioner).id}}",
    }
    result = run(templates, {"patientId": "p1", "draftOrders": draft_orders(in_context, local_only)}, server)
    assert result.omitted == {}
    assert result.queries["contained"] == "Device?_id=dev"  # '#dev' found among contained resources
    assert result.queries["local"] == "ServiceRequest?_id=s-local"  # a draft order: no fetch needed
    assert result.queries["chained"] == "Practitioner?_id=d1"  # absolute ref on our base; elsewhere: not fetched
    assert id_set(result.values["roles"]) == {"r1"}
    assert not any("elsewhere" in url or "ServiceRequest/s-local" in url for url in urls(server))
    fetched = [url for url in urls(server) if url not in {f"{BASE}/{q}" for q in result.queries.values()}]
    assert fetched == [f"{BASE}/PractitionerRole/r1", f"{BASE}/Practitioner/d1"]  # each target fetched once


def test_order_dispatch_references_are_fetched_from_the_ehr() -> None:
    server = MemoryFhirServer([order("ServiceRequest", "s1"), order("MedicationRequest", "m1"),
                               order("MedicationRequest", "m2")], base_url=BASE)
    templates = {"serviceRequests": "ServiceRequest?_id={{context.dispatchedOrders.resolve()"
                                    ".ofType(ServiceRequest).id}}",
                 "medicationRequests": "MedicationRequest?_id={{context.dispatchedOrders.resolve()"
                                       ".ofType(MedicationRequest).id}}",
                 "deviceRequests": "DeviceRequest?_id={{context.dispatchedOrders.resolve().ofType(DeviceRequest).id}}"}
    context = {"patientId": "p1", "performer": "Organization/o1",
               "dispatchedOrders": ["ServiceRequest/s1", "MedicationRequest/m1", "MedicationRequest/m2",
                                    "ServiceRequest/gone"]}
    result = run(templates, context, server, hook="order-dispatch")
    assert id_set(result.values["serviceRequests"]) == {"s1"}
    assert result.queries["serviceRequests"] == "ServiceRequest?_id=s1"  # the missing one resolves to nothing
    assert id_set(result.values["medicationRequests"]) == {"m1", "m2"}
    assert result.values["deviceRequests"] is None


# --- Coverage ------------------------------------------------------------------------------------------------


def test_the_primary_active_coverage_of_the_patient_is_the_only_one_sent() -> None:
    server = MemoryFhirServer([
        coverage("secondary", order_=2),
        coverage("cancelled", status="cancelled", order_=0),
        coverage("someone-else", patient="Patient/p2", order_=1),
        coverage("primary", order_=1),
        coverage("unordered"),
    ], base_url=BASE)
    result = run({"coverage": "Coverage?patient={{context.patientId}}&status=active"}, {"patientId": "p1"}, server)
    bundle = filled(result, "coverage")
    assert [entry["resource"]["id"] for entry in bundle["entry"]] == ["primary"]
    assert bundle["total"] == 1
    assert bundle["type"] == "searchset"


def test_primary_coverage_rule() -> None:
    def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
                "link": [{"relation": "next", "url": f"{BASE}/Coverage?page=2"}],
                "entry": [{"resource": resource} for resource in resources]}

    first = primary_coverage(bundle(coverage("a"), coverage("b")), "p1")
    assert first is not None and first["entry"][0]["resource"]["id"] == "a"  # no order: the server's first
    assert first["link"] == []
    absolute = primary_coverage(bundle(coverage("x", patient=f"{BASE}/Patient/p1")), "p1", fhir_base=BASE)
    assert absolute is not None and absolute["entry"][0]["resource"]["id"] == "x"
    assert primary_coverage(bundle(coverage("x", patient="Patient/p10")), "p1") is None
    assert primary_coverage(bundle(coverage("x", status="draft")), "p1") is None
    assert primary_coverage(bundle(coverage("x", order_=True), coverage("y", order_=3)), "p1") is not None


# --- failures ------------------------------------------------------------------------------------------------


def test_a_failing_query_omits_the_key_with_a_reason() -> None:
    server = MemoryFhirServer([{"resourceType": "Patient", "id": "p1"}, coverage("c1")], base_url=BASE)
    templates = {"patient": "Patient/{{context.patientId}}", "encounter": "Encounter/{{context.encounterId}}",
                 "coverage": "Coverage?patient={{context.patientId}}&status=active",
                 "odd": "Coverage?patient={{context.patientId}}&payor=x"}

    def answer(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/Encounter/e1"):
            return httpx.Response(503)
        if request.url.path.endswith("/Coverage") and "payor" not in str(request.url):
            raise httpx.ConnectError("refused")
        return None

    with failing(server, answer) as http:
        result = prefetch(templates, {"patientId": "p1", "encounterId": "e1"}, fhir_base=BASE, hook="order-sign",
                          http=http)
    assert list(result.values) == ["patient"]
    assert result.omitted["encounter"] == "the query failed: HTTP 503"
    assert "ConnectError" in result.omitted["coverage"]
    assert result.omitted["odd"] == "the query failed: HTTP 400"  # unknown search parameter at the EHR
    assert set(result.queries) == {"patient", "encounter", "coverage", "odd"}
    assert all("p1" not in reason and "e1" not in reason for reason in result.omitted.values())


def test_a_read_answered_with_the_wrong_resource_or_a_404() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Patient/p1"):
            return httpx.Response(200, json={"resourceType": "Patient", "id": "p2"})
        if request.url.path.endswith("/Encounter/e1"):
            return httpx.Response(404, json={"resourceType": "OperationOutcome"})
        return httpx.Response(200, text="<html/>")

    templates = {"patient": "Patient/{{context.patientId}}", "encounter": "Encounter/{{context.encounterId}}",
                 "coverage": "Coverage?patient={{context.patientId}}"}
    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        result = prefetch(templates, {"patientId": "p1", "encounterId": "e1"}, fhir_base=BASE, hook="order-sign",
                          http=http)
    assert "another Patient" in result.omitted["patient"]
    assert result.values == {"encounter": None}  # 404: the EHR has no such resource, which is "no data"
    assert "searchset Bundle" in result.omitted["coverage"]


def test_a_failing_reference_fetch_omits_the_key() -> None:
    server = MemoryFhirServer([{"resourceType": "PractitionerRole", "id": "r1"}], base_url=BASE)
    context = {"patientId": "p1", "draftOrders": draft_orders(order("ServiceRequest", "s1",
                                                                    requester={"reference": "PractitionerRole/r1"}))}
    templates = {"roles": "PractitionerRole?_id={{context.draftOrders.entry.resource.requester.resolve().id}}",
                 "again": "PractitionerRole?_id={{context.draftOrders.entry.resource.requester.resolve().id}}"}
    with failing(server, lambda request: httpx.Response(500)) as http:
        result = prefetch(templates, context, fhir_base=BASE, hook="order-sign", http=http)
    assert result.omitted["roles"] == "resolving a PractitionerRole reference failed: HTTP 500"
    assert result.omitted["again"] == result.omitted["roles"]  # the failure is remembered, not retried
    assert result.values == {} and result.queries == {}


def test_search_pages_are_followed_and_merged() -> None:
    server = MemoryFhirServer([{"resourceType": "Practitioner", "id": f"d{i}"} for i in range(5)], base_url=BASE)
    result = run({"practitioners": "Practitioner?_id={{context.ids}}&_count=2"},
                 {"patientId": "p1", "ids": [f"d{i}" for i in range(5)]}, server)
    bundle = filled(result, "practitioners")
    assert [entry["resource"]["id"] for entry in bundle["entry"]] == ["d0", "d1", "d2", "d3", "d4"]
    assert all(link["relation"] != "next" for link in bundle["link"])
    assert len(server.requests) == 3


def test_bad_arguments_fail_before_any_io() -> None:
    with pytest.raises(ConfigurationError):
        prefetch_flow({}, {}, fhir_base="not a url", hook="order-sign")
    with pytest.raises(InputError):
        prefetch_flow([], {}, fhir_base=BASE, hook="order-sign")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        prefetch_flow({}, "context", fhir_base=BASE, hook="order-sign")  # type: ignore[arg-type]
    result = run({"patient": 7, "rel": "https://evil.example/Patient/{{context.patientId}}"},  # type: ignore[dict-item]
                 {"patientId": "p1"}, MemoryFhirServer(base_url=BASE))
    assert result.omitted["patient"] == "the template is not a string"
    assert "relative" in result.omitted["rel"]


# --- sync, async, logging ------------------------------------------------------------------------------------


async def test_async_run_equals_sync_run() -> None:
    request = load_fixture("crd", "order-sign-request_complete-prefetch.json")
    templates = templates_for(load_fixture("crd", "cds-services-v220.json"), "order-sign")
    server = server_from_request(request, request["fhirServer"])
    with memory_client(server) as http:
        expected = run_sync(prefetch_flow(templates, request["context"], fhir_base=request["fhirServer"],
                                          hook="order-sign"), http, None)
    async with memory_async_client(server) as ahttp:
        got = await aprefetch(templates, request["context"], fhir_base=request["fhirServer"], hook="order-sign",
                              http=ahttp)
    assert got == expected
    assert got.values["practitioners"] is not None


def test_values_and_queries_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    server = MemoryFhirServer([{"resourceType": "Patient", "id": "secret-patient"}], base_url=BASE)
    with caplog.at_level(logging.DEBUG):
        result = run({"patient": "Patient/{{context.patientId}}", "bad": "Encounter/{{context.encounterId}}"},
                     {"patientId": "secret-patient", "encounterId": "secret-encounter"}, server)
    assert result.values["patient"] is not None
    ours = [record.getMessage() for record in caplog.records if record.name.startswith("fhir_pa")]
    assert len(ours) == 2, "the engine logs each key's outcome at debug level"
    assert not any("secret" in message for message in ours)


def test_read_tokens_must_give_one_id_and_literal_percents_are_not_keys() -> None:
    server = MemoryFhirServer([{"resourceType": "Patient", "id": "p1", "identifier": [{"value": "é"}]}],
                              base_url=BASE)
    templates = {"many": "Patient/{{context.ids}}", "escape": "Patient/{{context.up}}",
                 "literal": "Patient?identifier=%C3%A9&_id={{context.patientId}}"}
    result = run(templates, {"patientId": "p1", "ids": ["a", "b"], "up": "../Coverage"}, server)
    assert "single id" in result.omitted["many"]
    assert "single id" in result.omitted["escape"]
    assert id_set(result.values["literal"]) == {"p1"}  # %C3 in the template's own text is not a %key
    assert len(server.requests) == 1


def test_contained_resources_are_reachable_only_by_hash_id() -> None:
    server = MemoryFhirServer(base_url=BASE)
    request = order("DeviceRequest", "dr1", codeReference={"reference": "Device/dev"},
                    contained=[{"resourceType": "Device", "id": "dev"}])
    result = run({"devices": "Device?_id={{context.draftOrders.entry.resource.code.resolve().id}}"},
                 {"patientId": "p1", "draftOrders": draft_orders(request)}, server)
    assert result.values == {"devices": None}  # "Device/dev" is not the contained one, and the EHR has none
    assert urls(server) == [f"{BASE}/Device/dev"]


def test_an_id_search_for_a_resource_already_read_in_the_run_is_answered_without_a_request() -> None:
    server = MemoryFhirServer([
        {"resourceType": "Patient", "id": "p1"},
        {"resourceType": "PractitionerRole", "id": "r1", "practitioner": {"reference": "Practitioner/d1"}},
        {"resourceType": "Practitioner", "id": "d1", "name": [{"family": "Who"}]},
    ])
    context = {"userId": "PractitionerRole/r1", "patientId": "p1", "draftOrders": {
        "resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
            "resourceType": "ServiceRequest", "id": "s1", "status": "draft", "intent": "order",
            "subject": {"reference": "Patient/p1"}, "requester": {"reference": "PractitionerRole/r1"}}}]}}
    templates = {"doctor": "Practitioner?_id={{context.draftOrders.entry.resource.requester.resolve()"
                           ".practitioner.resolve().id}}",
                 "other": "Practitioner?_id=d1&name=Who"}
    result = run(templates, context, server)
    bundle = filled(result, "doctor")
    assert bundle["type"] == "searchset" and [e["resource"]["id"] for e in bundle["entry"]] == ["d1"]
    seen = urls(server)
    assert f"{server.base_url}/Practitioner/d1" in seen  # read once by resolve() ...
    assert not any(url.startswith(f"{server.base_url}/Practitioner?_id=d1&_count") or url.endswith(
        "Practitioner?_id=d1") for url in seen)  # ... and not searched again

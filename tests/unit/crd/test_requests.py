"""What our CRD client sends: discovery reading, hook contexts, the client JWT, fhirAuthorization, and the
Inferno CRD client checks themselves (held against the IG's and the test kit's own requests)."""

from __future__ import annotations

import copy
import json
import time
import uuid
from typing import Any

import pytest

from fhir_pa.auth.keys import generate_key
from fhir_pa.auth.verify import JtiCache
from fhir_pa.crd.authorization import FhirAuthorization, StaticTokenIssuer, resource_types, scopes_for
from fhir_pa.crd.checks import check_client_jwt, check_hook_request
from fhir_pa.crd.discovery import parse_discovery
from fhir_pa.crd.hooks import (
    appointment_book_context,
    encounter_context,
    hook_request,
    order_dispatch_context,
    order_refs,
    order_select_context,
    order_sign_context,
)
from fhir_pa.crd.identity import CdsClientIdentity
from fhir_pa.errors import ConfigurationError, InputError, InvalidResponse
from tests.conftest import load_fixture

BASE = "https://ehr.example/fhir"
SR = {"resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
      "subject": {"reference": "Patient/p1"}}


def _rules(issues: list[Any]) -> set[tuple[str, str]]:
    return {(i.rule, i.path) for i in issues}


# --- discovery -------------------------------------------------------------------------------------------------


def test_ig_discovery_gives_services_by_id_with_their_templates_versions_and_options() -> None:
    discovery = parse_discovery(load_fixture("crd", "CRDServices.json"), base_url="https://payer.example/r4")
    service = discovery.for_hook("order-sign")
    assert service is not None and service.id == "order-sign-crd" != service.hook
    assert discovery.url(service) == "https://payer.example/r4/cds-services/order-sign-crd"
    assert service.prefetch["coverage"] == "Coverage?patient={{context.patientId}}&status=active"
    assert service.crd_versions == ("2.2",)
    assert "coverage-info" in {option.code for option in service.configuration_options}
    booking = discovery.for_hook("appointment-book")
    assert booking is not None and booking.crd_versions == ("2.1", "2.2")


def test_inferno_201_discovery_has_no_versions_and_other_ids() -> None:
    discovery = parse_discovery(load_fixture("crd", "cds-services.json"), base_url="https://inferno/cds-services")
    service = discovery.for_hook("order-dispatch")
    assert service is not None and service.id == "order-dispatch-service" and service.crd_versions == ()
    assert set(service.prefetch) == {"patient", "performer", "order", "coverage"}


def test_odd_discovery_is_read_with_warnings_and_non_discovery_refused() -> None:
    doc = {"services": [{"hook": "order-sign"}, {"id": "s", "hook": "order-sign", "prefetch": {"a": 1},
                                                 "extension": {"davinci-crd.version": ["2.0", "two"]}}, "junk"]}
    discovery = parse_discovery(doc, base_url="https://p")
    assert [s.id for s in discovery.services] == ["s"] and discovery.services[0].crd_versions == ("2.0",)
    assert len(discovery.warnings) == 4
    for bad in (b"<html>", b'{"cards": []}'):
        with pytest.raises(InvalidResponse):
            parse_discovery(bad, base_url="https://p")


# --- contexts ------------------------------------------------------------------------------------------------------


def test_order_sign_context_is_a_collection_bundle_with_full_urls() -> None:
    context = order_sign_context(user_id="PractitionerRole/r1", patient_id="p1", encounter_id="e1",
                                 draft_orders=[SR], fhir_server=BASE)
    entry = context["draftOrders"]["entry"][0]
    assert context["draftOrders"]["type"] == "collection" and entry["fullUrl"] == f"{BASE}/ServiceRequest/sr-1"
    assert order_refs("order-sign", context) == ("ServiceRequest/sr-1",)


@pytest.mark.parametrize(("build", "path"), [
    (lambda: order_sign_context(user_id="Practitioner/x", patient_id="Patient/p1", draft_orders=[SR],
                                fhir_server=BASE), "context.patientId"),
    (lambda: order_sign_context(user_id="Patient/x", patient_id="p1", draft_orders=[SR], fhir_server=BASE),
     "context.userId"),
    (lambda: order_sign_context(user_id="Practitioner/x", patient_id="p1", draft_orders=[{**SR, "id": None}],
                                fhir_server=BASE), "context.draftOrders.entry[0].resource.id"),
    (lambda: order_sign_context(user_id="Practitioner/x", patient_id="p1", draft_orders=[SR, SR],
                                fhir_server=BASE), "context.draftOrders.entry[1].resource.id"),
    (lambda: order_sign_context(user_id="Practitioner/x", patient_id="p1", draft_orders=[{"resourceType": "Patient",
                                                                                           "id": "p"}],
                                fhir_server=BASE), "context.draftOrders.entry[0].resource.resourceType"),
    (lambda: order_select_context(user_id="Practitioner/x", patient_id="p1", draft_orders=[SR],
                                  selections=["ServiceRequest/other"], fhir_server=BASE), "context.selections[0]"),
    (lambda: order_dispatch_context(patient_id="p1", dispatched_orders=["sr-1"], performer="Organization/o"),
     "context.dispatchedOrders[0]"),
    (lambda: appointment_book_context(user_id="Practitioner/x", patient_id="p1", fhir_server=BASE,
                                      appointments=[{"resourceType": "Appointment", "id": "a", "status": "booked"}]),
     "context.appointments.entry[0].resource.status"),
    (lambda: hook_request("order-unsign", {}, fhir_server=None, fhir_authorization=None, prefetch=None), "hook"),
])
def test_bad_contexts_are_refused_with_their_path(build: Any, path: str) -> None:
    with pytest.raises(InputError) as caught:
        build()
    assert caught.value.path == path


def test_hook_request_is_fresh_each_time_and_carries_version_and_configuration() -> None:
    context = encounter_context(user_id="Practitioner/x", patient_id="p1", encounter_id="e1")
    first, second = (hook_request("encounter-start", context, fhir_server=BASE, fhir_authorization=None,
                                  prefetch=None, requested_version="2.2", configuration={"max-cards": 3})
                     for _ in range(2))
    assert first["hookInstance"] != second["hookInstance"] and uuid.UUID(first["hookInstance"]).version == 4
    assert first["extension"] == {"davinci-crd.requestedVersion": "2.2", "davinci-crd.configuration": {"max-cards": 3}}
    assert check_hook_request(first, hook="encounter-start", advertised_prefetch={}) == []


# --- the Inferno request checks against real requests ------------------------------------------------------------


@pytest.mark.parametrize(("discovery", "request_file"), [
    ("cds-services-v220.json", "order-sign-request_complete-prefetch.json"),
    ("cds-services-v220.json", "order_dispatch_hook_v220_request.json"),
    ("CRDServices.json", "CRDServiceRequest3.json"),
    ("CRDServices.json", "CRDServiceRequest4.json"),
])
def test_conformant_kit_and_ig_requests_pass(discovery: str, request_file: str) -> None:
    services = parse_discovery(load_fixture("crd", discovery), base_url="https://payer/cds-services")
    body = load_fixture("crd", request_file)
    service = services.for_hook(body["hook"])
    assert service is not None
    assert check_hook_request(body, hook=body["hook"], advertised_prefetch=service.prefetch) == []


def test_the_ig_order_sign_example_breaks_two_22_prefetch_rules() -> None:
    services = parse_discovery(load_fixture("crd", "CRDServices.json"), base_url="https://payer/cds-services")
    body = load_fixture("crd", "CRDServiceRequest.json")
    service = services.for_hook("order-sign")
    assert service is not None
    rules = _rules(check_hook_request(body, hook="order-sign", advertised_prefetch=service.prefetch))
    assert rules == {("crd_hook_request_valid_prefetch", "$.prefetch.coverage.entry[0].resource.beneficiary"),
                     ("crd_hook_request_valid_prefetch", "$.prefetch.device"),
                     ("crd_hook_request_valid_prefetch", "$.prefetch.medication")}


def _good() -> dict[str, Any]:
    return copy.deepcopy(load_fixture("crd", "order-sign-request_complete-prefetch.json"))


@pytest.mark.parametrize(("change", "expected"), [
    (lambda b: b.update(hook="order-select"), ("crd_hook_request_required_fields", "$.hook")),
    (lambda b: b.update(hookInstance="1234"), ("crd_hook_request_required_fields", "$.hookInstance")),
    (lambda b: b.pop("fhirServer"), ("crd_hook_request_required_fields", "$.fhirServer")),
    (lambda b: b["fhirAuthorization"].update(token_type="bearer"),
     ("crd_hook_request_optional_fields", "$.fhirAuthorization.token_type")),
    (lambda b: b["fhirAuthorization"].update(expires_in="300"),
     ("crd_hook_request_optional_fields", "$.fhirAuthorization.expires_in")),
    (lambda b: b["fhirAuthorization"].pop("subject"),
     ("crd_hook_request_optional_fields", "$.fhirAuthorization.subject")),
    (lambda b: b["context"].update(patientId="Patient/forprefetch"),
     ("crd_hook_request_valid_context", "$.context.patientId")),
    (lambda b: b["context"].update(userId="Organization/x"), ("crd_hook_request_valid_context", "$.context.userId")),
    (lambda b: b["context"].pop("draftOrders"), ("crd_hook_request_valid_context", "$.context.draftOrders")),
    (lambda b: b["context"]["draftOrders"]["entry"][0].pop("fullUrl"),
     ("crd_hook_request_valid_context", "$.context.draftOrders.entry[0].fullUrl")),
    (lambda b: b["prefetch"].update(extra={"resourceType": "Patient"}),
     ("crd_hook_request_valid_prefetch", "$.prefetch.extra")),
    (lambda b: b["prefetch"].update(patient={"resourceType": "Practitioner", "id": "x"}),
     ("crd_hook_request_valid_prefetch", "$.prefetch.patient")),
    (lambda b: b["prefetch"]["coverage"]["entry"].append(copy.deepcopy(b["prefetch"]["coverage"]["entry"][0])),
     ("crd_hook_request_valid_prefetch", "$.prefetch.coverage")),
    (lambda b: b["prefetch"]["coverage"]["entry"][0]["resource"].update(status="cancelled"),
     ("crd_hook_request_valid_prefetch", "$.prefetch.coverage.entry[0].resource.status")),
])
def test_each_broken_rule_is_named(change: Any, expected: tuple[str, str]) -> None:
    body = _good()
    templates = parse_discovery(load_fixture("crd", "cds-services-v220.json"), base_url="https://p")
    service = templates.for_hook("order-sign")
    assert service is not None
    change(body)
    assert expected in _rules(check_hook_request(body, hook="order-sign", advertised_prefetch=service.prefetch))


# --- client JWT and fhirAuthorization ------------------------------------------------------------------------------


def test_client_jwt_passes_the_inferno_token_checks_and_fails_each_one_when_broken() -> None:
    identity = CdsClientIdentity(generate_key("ES384"), "https://ehr.example")
    url = "https://payer.example/cds-services/order-sign-crd"
    token = identity.jwt(url)
    jwks = identity.jwks()
    assert all(key.get("kid") and key.get("alg") for key in jwks["keys"])
    cache = JtiCache()
    assert check_client_jwt(f"Bearer {token}", audience=url, jwks=jwks, issuer=identity.issuer, jti_cache=cache) == []
    replay = check_client_jwt(f"Bearer {token}", audience=url, jwks=jwks, issuer=identity.issuer, jti_cache=cache)
    assert any("already been used" in i.message for i in replay)
    assert check_client_jwt(f"Bearer {token}", audience=url + "x", jwks=jwks, issuer=identity.issuer)
    assert check_client_jwt(f"Bearer {token}", audience=url, jwks=jwks, issuer="someone-else")
    later = time.time() + identity.lifetime + 120
    assert check_client_jwt(f"Bearer {token}", audience=url, jwks=jwks, issuer=identity.issuer, now=later)
    other = CdsClientIdentity(generate_key("ES384"), identity.issuer).jwks()
    assert check_client_jwt(f"Bearer {token}", audience=url, jwks=other, issuer=identity.issuer)
    assert check_client_jwt(None, audience=url, jwks=jwks, issuer=None)[0].rule == "crd_decode_auth_token"
    assert check_client_jwt("Bearer not.a.jwt", audience=url, jwks=jwks, issuer=None)[0].rule == \
        "crd_decode_auth_token"


def test_two_jwts_differ_and_the_lifetime_is_capped() -> None:
    identity = CdsClientIdentity(generate_key("RS384"), "iss-1", jku="https://ehr.example/jwks.json")
    assert identity.jwt("https://a") != identity.jwt("https://a")
    with pytest.raises(ConfigurationError):
        CdsClientIdentity(generate_key("ES384"), "iss", lifetime=3600)


def test_scopes_are_narrowed_to_the_templates() -> None:
    templates = {"patient": "Patient/{{context.patientId}}", "devices": "Device?_id={{...}}", "odd": "{{x}}"}
    assert resource_types(templates) == ("Patient", "Device")
    assert scopes_for(templates) == ("user/Patient.rs", "user/Coverage.rs", "user/Device.rs")


def test_fhir_authorization_never_shows_its_token() -> None:
    issued = StaticTokenIssuer("s3cret", "user/*.rs", "payer-crd", lifetime=20).issue(
        scopes=["user/Patient.rs"], patient_id="p1", lifetime=30)
    assert issued.expires_in == 20 and issued.as_json()["patient"] == "p1"
    assert "s3cret" not in repr(issued) and "s3cret" not in json.dumps(repr(StaticTokenIssuer("s3cret", "a", "b")))
    with pytest.raises(ConfigurationError):
        FhirAuthorization(access_token="", expires_in=30, scope="a", subject="b")

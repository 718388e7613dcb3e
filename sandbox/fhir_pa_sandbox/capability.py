"""``GET /fhir/metadata``: what this payer offers (``$submit``, ``$inquire``, ClaimResponse read and search,
PAS Subscriptions), and how to log in."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fhir_pa_sandbox.outcome import fhir_response
from fhir_pa_sandbox.state import fhir_base, token_url
from fhir_pa_sandbox.subscriptions import TOPIC

SUBMIT_OPERATION = "http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-submit"
INQUIRE_OPERATION = "http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-inquiry"
DTR = "http://hl7.org/fhir/us/davinci-dtr/OperationDefinition"
DTR_OPERATIONS = (("questionnaire-package", f"{DTR}/questionnaire-package"),
                  ("log-questionnaire-errors", f"{DTR}/log-questionnaire-errors"),
                  ("next-question", "http://hl7.org/fhir/uv/sdc/OperationDefinition/Questionnaire-next-question"))
TOPIC_CANONICAL = ("http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
                   "capabilitystatement-subscriptiontopic-canonical")
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def capability_statement(base: str, token: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "software": {"name": "fhir-pa sandbox payer"},
        "implementation": {"description": "fhir-pa sandbox payer (PAS 2.2.1 simulator)", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "security": {
                "extension": [{"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token}]}],
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                         "code": "SMART-on-FHIR"}]}],
                "description": "SMART Backend Services: client_credentials with a private_key_jwt assertion",
            },
            "resource": [
                {"type": "Claim", "operation": [{"name": "submit", "definition": SUBMIT_OPERATION},
                                                {"name": "inquire", "definition": INQUIRE_OPERATION}]},
                {"type": "ClaimResponse", "interaction": [{"code": "read"}, {"code": "search-type"}],
                 "searchParam": [{"name": "_id", "type": "token"}, {"name": "identifier", "type": "token"},
                                 {"name": "request.identifier", "type": "token"}]},
                {"type": "Questionnaire", "operation": [{"name": name, "definition": definition}
                                                        for name, definition in DTR_OPERATIONS]},
                {"type": "Subscription",
                 "extension": [{"url": TOPIC_CANONICAL, "valueCanonical": TOPIC}],
                 "interaction": [{"code": code} for code in ("create", "read", "update", "delete",
                                                             "search-type")]},
            ],
        }],
    }


async def metadata(request: Request) -> Response:
    return fhir_response(capability_statement(fhir_base(request), token_url(request)))

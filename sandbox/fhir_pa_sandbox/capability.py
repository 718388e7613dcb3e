"""``GET /fhir/metadata``: what this payer offers (Claim ``$submit``, ClaimResponse read), how to log in."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fhir_pa_sandbox.outcome import fhir_response
from fhir_pa_sandbox.state import fhir_base, token_url

SUBMIT_OPERATION = "http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-submit"
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
                {"type": "Claim", "operation": [{"name": "submit", "definition": SUBMIT_OPERATION}]},
                {"type": "ClaimResponse", "interaction": [{"code": "read"}]},
            ],
        }],
    }


async def metadata(request: Request) -> Response:
    return fhir_response(capability_statement(fhir_base(request), token_url(request)))

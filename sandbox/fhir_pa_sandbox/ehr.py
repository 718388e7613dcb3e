"""The sandbox's small EHR: a FHIR endpoint with synthetic patients, and the tokens it grants payers.

CRD needs an EHR side: the client fills prefetch from it, and the payer's CRD service reads back into it with
the short-lived ``fhirAuthorization`` token the client obtained. Here the chart is
``data/ehr/chart.json`` (synthetic people) held in :class:`fhir_pa.fhir.memory.MemoryFhirServer` and served
over HTTP at ``/ehr/fhir``; :class:`SandboxEhr` is also the :class:`~fhir_pa.crd.authorization.TokenIssuer`
the client asks for tokens. Every read needs a live token whose scopes cover the resource type.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from fhir_pa.crd.authorization import FhirAuthorization
from fhir_pa.fhir.memory import MemoryFhirServer
from fhir_pa_sandbox.config import packaged_data
from fhir_pa_sandbox.state import state_of

EHR_PATH = "/ehr/fhir"
#: The client id the sandbox payer's CRD service has at the sandbox EHR (``fhirAuthorization.subject``).
CRD_SUBJECT = "sandbox-payer-crd"


@dataclass(frozen=True)
class Grant:
    scopes: frozenset[str]
    patient: str | None
    expires_at: float

    def allows(self, resource_type: str, now: float) -> bool:
        if now >= self.expires_at:
            return False
        return any(scope.split("/", 1)[-1].split(".", 1)[0] in (resource_type, "*") and
                   scope.rsplit(".", 1)[-1][:1] in ("r", "s", "*") for scope in self.scopes)


class SandboxEhr:
    """The chart and the tokens granted on it. Thread-safe."""

    def __init__(self, store: MemoryFhirServer | None = None, *, clock: Any = time.time) -> None:
        self.store = store or MemoryFhirServer.from_bundle(json.loads(packaged_data("ehr/chart.json").read_text()),
                                                           base_url=f"http://sandbox.local{EHR_PATH}",
                                                           record_requests=False)
        self._clock = clock
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()
        self.reads = 0

    def issue(self, *, scopes: Sequence[str], patient_id: str | None, lifetime: int) -> FhirAuthorization:
        """Grant a payer a token (the TokenIssuer protocol)."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._grants[token] = Grant(frozenset(scopes), patient_id, self._clock() + lifetime)
        return FhirAuthorization(access_token=token, expires_in=lifetime, scope=" ".join(scopes),
                                 subject=CRD_SUBJECT, patient=patient_id)

    def grant(self, token: str | None) -> Grant | None:
        with self._lock:
            return self._grants.get(token) if token else None

    def answer(self, request: httpx.Request, resource_type: str) -> httpx.Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        grant = self.grant(token.strip() if scheme.lower() == "bearer" else None)
        if grant is None or not grant.allows(resource_type, self._clock()):
            body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden",
                    "diagnostics": "a live token with a read scope for this resource type is required"}]}
            return httpx.Response(401 if grant is None else 403, json=body)
        self.reads += 1
        return self.store.handle(request)


async def ehr_fhir(request: Request) -> Response:
    """``GET /ehr/fhir/{Type}[/{id}]``: the chart, for token holders (the CRD payer and our own prefetch)."""
    ehr = state_of(request).ehr
    base = f"{str(request.base_url).rstrip('/')}{EHR_PATH}"
    ehr.store.base_url = base
    resource_type = request.path_params["rest"].split("/", 1)[0]
    forwarded = httpx.Request("GET", str(request.url), headers=dict(request.headers))
    answer = ehr.answer(forwarded, resource_type)
    return Response(answer.content, status_code=answer.status_code, media_type="application/fhir+json")

"""The demo's first step: ask the sandbox payer's CRD service about each order, as an EHR does at signing.

Each order's service line becomes a draft ServiceRequest for the sandbox EHR's patient ``pat-alex``; the CRD
client fills the prefetch from the sandbox EHR, hands the payer a short-lived token, and gets a coverage decision
per order, whose coverage-information then travels on the order into PAS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from fhir_pa.auth.bearer import BearerToken
from fhir_pa.auth.keys import SigningKey
from fhir_pa.crd.client import CrdClient, CrdPayer, CrdResult, Ehr
from fhir_pa.crd.handoff import coverage_extensions
from fhir_pa.crd.hooks import ORDER_SIGN, order_sign_context
from fhir_pa.crd.identity import CdsClientIdentity
from fhir_pa.pas import codes
from fhir_pa.pas.order import PriorAuthOrder
from fhir_pa_sandbox.server import SandboxServer

PATIENT = "pat-alex"
USER = "PractitionerRole/role-robin"
SYSTEMS = {"cpt": codes.CPT, "hcpcs": codes.HCPCS}


@dataclass
class CrdStep:
    """A CRD client bound to the sandbox payer and the sandbox EHR, for the length of the demo."""

    client: CrdClient
    ehr_base: str
    #: The last call's answer and the draft orders it was about (what DTR starts from).
    last: CrdResult | None = None
    drafts: list[dict[str, Any]] = field(default_factory=list)

    def check(self, order: PriorAuthOrder) -> tuple[PriorAuthOrder, dict[str, Any]]:
        """order-sign for ``order``; returns the order carrying the payer's coverage information, and a summary."""
        drafts = [{"resourceType": "ServiceRequest", "id": f"{order.order_id}-{n}", "status": "draft",
                   "intent": "order", "authoredOn": "2026-12-01",
                   "code": {"coding": [{"system": SYSTEMS[line.code_system], "code": line.code}]},
                   "subject": {"reference": f"Patient/{PATIENT}"}, "requester": {"reference": USER}}
                  for n, line in enumerate(order.services, start=1)]
        context = order_sign_context(user_id=USER, patient_id=PATIENT, draft_orders=drafts,
                                     fhir_server=self.ehr_base, encounter_id="enc-alex")
        result = self.client.call(ORDER_SIGN, context)
        self.last, self.drafts = result, [result.apply_to(draft) for draft in drafts]
        lines = [line.model_copy(update={"coverage_information": coverage_extensions(
            result, f"ServiceRequest/{draft['id']}")}) for line, draft in zip(order.services, drafts, strict=True)]
        first = result.decisions[0] if result.decisions else None
        summary = {"answered": result.answered, "covered": first.covered if first else None,
                   "pa_needed": first.pa_needed if first else None,
                   "doc_needed": list(first.doc_needed) if first else [],
                   "questionnaires": list(first.questionnaires) if first else [],
                   "cards": [card.summary for card in result.cards]}
        return order.model_copy(update={"services": lines}), summary


def crd_step(server: SandboxServer, key: SigningKey, issuer: str) -> CrdStep:
    """A CRD client for the demo: our JWT identity is ``issuer`` (registered with ``key``'s JWKS)."""
    ehr_base = f"{server.base_url}/ehr/fhir"
    own = server.state.ehr.issue(scopes=["user/*.rs"], patient_id=None, lifetime=3600)
    ehr = Ehr(fhir_server=ehr_base, http=httpx.Client(), auth=BearerToken(own.access_token),
              token_issuer=server.state.ehr)
    payer = CrdPayer(cds_base_url=f"{server.base_url}/crd/cds-services", identity=CdsClientIdentity(key, issuer))
    return CrdStep(CrdClient(payer, ehr), ehr_base)

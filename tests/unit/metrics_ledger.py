"""Ledgers for the report tests, written through the real Ledger API with real PAS request Bundles.

The ledger stamps ``created_at`` and ``decided_at`` with the wall clock; the tests need them at chosen moments,
so those two are set on the row afterwards (``submitted_at`` takes an explicit time through ``record_exchange``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from fhir_pa.ledger.schema import requests
from fhir_pa.ledger.store import Ledger, LedgerRecord
from fhir_pa.pas import codes
from fhir_pa.pas.bundle import PasRequest, build_request_bundle
from fhir_pa.pas.order import order_from_data
from fhir_pa.pas.submit_core import encode
from tests.conftest import order_data

Json = dict[str, Any]

SUBMITTED = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "submitted"}]}
X12_886 = "https://codesystem.x12.org/external/886"

#: Patient data that must never reach a MIPS report (distinctive, so a substring check is meaningful).
PATIENT = {"given": ["Quenby"], "family": "Zyxwvut", "birth_date": "1934-05-06", "gender": "female",
           "mrn": "MRN-SECRET-88"}
MEMBER_ID = "MEMBER-SECRET-77"
SECRETS = ("Quenby", "Zyxwvut", "1934-05-06", "MRN-SECRET-88", MEMBER_ID)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def review(code: str, reasons: tuple[tuple[str, str | None], ...] = ()) -> Json:
    parts: list[Json] = [{"url": codes.EXT_REVIEW_ACTION_CODE,
                          "valueCodeableConcept": {"coding": [{"system": codes.X12_REVIEW_ACTION, "code": code}]}}]
    for reason, display in reasons:
        coding: Json = {"system": X12_886, "code": reason}
        if display:
            coding["display"] = display
        parts.append({"url": "reasonCode", "valueCodeableConcept": {"coding": [coding]}})
    return {"url": codes.EXT_REVIEW_ACTION, "extension": parts}


def response(*items: str | tuple[str, tuple[tuple[str, str | None], ...]], preauth: str | None = None) -> bytes:
    """A minimal PAS response Bundle: one ClaimResponse item per review action (code, or (code, reasons))."""
    entries: list[Json] = []
    for sequence, spec in enumerate(items, start=1):
        code, reasons = (spec, ()) if isinstance(spec, str) else spec
        entries.append({"itemSequence": sequence,
                        "adjudication": [{"category": SUBMITTED, "extension": [review(code, reasons)]}]})
    claim_response: Json = {"resourceType": "ClaimResponse", "id": "cr", "status": "active", "use": "preauthorization",
                            "outcome": "complete", "item": entries}
    if preauth:
        claim_response["preAuthRef"] = preauth
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": "http://payer.example/fhir/ClaimResponse/cr", "resource": claim_response}]}
    return json.dumps(bundle).encode()


def order(order_id: str, *, npi: str = "1234567893", tin: str | None = "123456789", urgency: str = "standard",
          services: list[Json] | None = None) -> Any:
    data = order_data(order_id=order_id, urgency=urgency, patient=PATIENT, coverage={"member_id": MEMBER_ID},
                      requester={"practitioner": {"given": ["Bo"], "family": "Doc", "npi": npi},
                                 "organization": {"name": "Clinic", "npi": "1467586115", "tin": tin}})
    if services is not None:
        data["services"] = services
    return order_from_data(data)


@dataclass
class Writer:
    """Writes requests the way the PAS client does: intent, sending, the exchange, the payer's answer."""

    ledger: Ledger

    def set_times(self, record_id: str, **values: datetime | None) -> None:
        with self.ledger.engine.begin() as conn:
            conn.execute(update(requests).where(requests.c.id == record_id).values(**values))

    def intent(self, request: PasRequest, *, payer: str, urgency: str = "standard", kind: str = "submit",
               prior: LedgerRecord | None = None, order_id: str | None = None) -> LedgerRecord:
        return self.ledger.record_intent(
            order_id=order_id or request.order_id, payer=payer, bundle_identifier=request.bundle_identifier,
            claim_identifier=request.claim_identifier, urgency=urgency, body=encode(request.bundle), kind=kind,
            prior=prior)

    def send(self, record: LedgerRecord, at: datetime, answer: bytes, state: str, *,
             preauth: str | None = None) -> None:
        self.ledger.set_state(record.id, "sending")
        self.ledger.record_exchange(record.id, kind="submit", url=f"{record.payer}/Claim/$submit",
                                    body=record.request_body, started_at=at, delivery="sent", status_code=200,
                                    content_type="application/fhir+json", response_body=answer)
        self.ledger.set_state(record.id, state, detail="HTTP 200", preauth_ref=preauth, decision_body=answer,
                              channel="submit")

    def request(self, order_id: str, *, payer: str, submitted: datetime | None, state: str = "prepared",
                answer: bytes | None = None, decided: datetime | None = None, preauth: str | None = None,
                urgency: str = "standard", created: datetime | None = None, **order_args: Any) -> LedgerRecord:
        """One original request; ``decided`` pins the time of its final answer."""
        built = build_request_bundle(order(order_id, urgency=urgency, **order_args),
                                     now=submitted or datetime(2027, 1, 1, tzinfo=UTC))
        record = self.intent(built, payer=payer, urgency=urgency)
        if submitted is not None:
            self.send(record, submitted, answer or response("A4"), state, preauth=preauth)
        self.set_times(record.id, created_at=created or submitted or datetime(2027, 1, 1, tzinfo=UTC),
                       decided_at=decided)
        return self.ledger.get(record.id)

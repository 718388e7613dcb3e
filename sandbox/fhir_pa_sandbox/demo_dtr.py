"""The demo's documented case: CRD says documentation is needed, DTR fetches and fills the payer's form, and the
completed form goes with the PAS request.

The chart is the sandbox EHR's record of ``pat-alex`` plus the draft order; the payer's CQL (run on our ELM
engine) fills what the chart holds, and a scripted "clinician" answers the rest, as a person would in the EHR.
"""

from __future__ import annotations

from typing import Any

from fhir_pa.config import PayerConfig
from fhir_pa.crd.handoff import dtr_handoff
from fhir_pa.dtr import (
    DtrClient,
    attach_documentation,
    ensure_complete,
    finish_response,
    parameters_from_handoff,
    populate,
    qr_bundle,
    read_source,
    set_answers,
)
from fhir_pa.fhir.search import reference_matches
from fhir_pa.ledger.store import Ledger
from fhir_pa.pas.submit import PasClient
from fhir_pa_sandbox.demo_crd import PATIENT, CrdStep
from fhir_pa_sandbox.demo_orders import demo_order
from fhir_pa_sandbox.server import SandboxServer

CLINICIAN = "Practitioner/prac-robin"
TREATMENTS = "http://fhir-pa.example/sandbox/CodeSystem/respiratory-treatment"
#: What the clinician answers by hand, per linkId, on the sandbox's forms.
MANUAL: dict[str, list[dict[str, Any]]] = {
    "last-exacerbation": [{"valueDate": "2026-10-02"}],
    "prior-treatments": [{"valueCoding": {"system": TREATMENTS, "code": "dpi"}}],
}


def chart(server: SandboxServer, patient: str, extra: list[dict[str, Any]]) -> dict[str, Any]:
    """The patient's resources in the sandbox EHR (by subject, patient or beneficiary), plus ``extra``."""
    mine = [r for r in server.state.ehr.store.resources()
            if (r["resourceType"] == "Patient" and r["id"] == patient)
            or any(reference_matches((r.get(k) or {}).get("reference", ""), patient, default_type="Patient")
                   for k in ("subject", "patient", "beneficiary"))]
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in [*mine, *extra]]}


def _answers(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(node.get("answer", []))
    for item in node.get("item", []):
        found += _answers(item)
    return found


def run_documented(server: SandboxServer, payer: PayerConfig, ledger: Ledger, crd: CrdStep,
                   index: int) -> dict[str, Any]:
    """CPT 94640 through CRD, DTR and PAS; one demo row."""
    order, coverage_view = crd.check(demo_order("approved", order_id=f"demo-documented-{index}", index=index)
                                     .model_copy(update={"services": [
                                         demo_order("approved").services[0].model_copy(update={"code": "94640"})]}))
    assert crd.last is not None and crd.last.decisions
    handoff = dtr_handoff(crd.last.decisions[0])
    if handoff is None:
        raise RuntimeError("the sandbox payer's CRD rules no longer ask for documentation for 94640")
    coverage = server.state.ehr.store.get("Coverage", "cov-alex")
    assert coverage is not None
    draft = crd.drafts[0]
    with DtrClient(payer) as dtr:
        found = dtr.packages(parameters_from_handoff(handoff, coverage, [draft]))
    package = found.packages[0]
    filled = populate(package.bundle, chart(server, PATIENT, [draft]),
                      launch={"patient": f"Patient/{PATIENT}", "service_request": f"ServiceRequest/{draft['id']}"})
    response = filled.response
    for link_id, values in MANUAL.items():
        response = set_answers(response, package.questionnaire, link_id, values, author=CLINICIAN)
    done = finish_response(response, coverage="Coverage/cov-alex", orders=[f"ServiceRequest/{draft['id']}"],
                           author=CLINICIAN)
    ensure_complete(done, package.questionnaire)
    with PasClient(payer, ledger=ledger) as client:
        submitted = client.submit(attach_documentation(order, qr_bundle(done)))
    answers = _answers(done)
    return {
        "case": "documented",
        "crd": coverage_view,
        "dtr": {"questionnaire": package.canonical, "answers": len(answers),
                "auto": sum(read_source(a) == "auto-client" for a in answers),
                "manual": sum(read_source(a) == "manual" for a in answers),
                "population_errors": [e.one_line() for e in filled.errors]},
        "status": submitted.decision.status.value,
        "initial_status": submitted.decision.status.value,
        "channel": "submit",
        "expected": "approved",
        "expected_channel": "submit",
        "order_id": submitted.order_id,
        "record_id": submitted.record_id,
        "preauth_ref": submitted.decision.preauth_ref,
        "items": [{"sequence": i.sequence, "review_action": i.review_action, "status": i.status.value,
                   "auth_number": i.auth_number} for i in submitted.decision.items],
        "ledger_state": ledger.get(submitted.record_id).state,
    }

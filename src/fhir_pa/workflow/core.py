"""The workflow protocol without I/O style: what to ask next, and what each answer means for the order.

The sync and async workflows (:mod:`fhir_pa.workflow.run`) share it, so they cannot drift apart. Every step is
written to the ledger's step log (``ledger.steps``) as it happens, so where an order stands and why is never only
in memory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from fhir_pa.crd.client import CrdResult
from fhir_pa.crd.handoff import DtrHandoff, coverage_extensions, dtr_handoff
from fhir_pa.crd.hooks import order_sign_context
from fhir_pa.dtr.attach import attach_documentation
from fhir_pa.dtr.completion import completion_issues
from fhir_pa.dtr.origin import read_source
from fhir_pa.dtr.package import QuestionnairePackage
from fhir_pa.dtr.prepopulate import populate
from fhir_pa.dtr.response import finish_response, iter_answers, qr_bundle
from fhir_pa.errors import (
    FhirPaError,
    InputError,
    Issue,
    LedgerError,
    PayerRejected,
    PayerUnavailable,
    TransportError,
)
from fhir_pa.fhir.flow import Flow, exchange
from fhir_pa.ledger.store import Ledger, LedgerRecord
from fhir_pa.pas import codes
from fhir_pa.pas.decision import PasDecision
from fhir_pa.pas.order import PriorAuthOrder
from fhir_pa.pas.submit import SubmitResult
from fhir_pa.pas.track import TrackResult
from fhir_pa.workflow.model import WorkflowOrder
from fhir_pa.workflow.result import FormOutcome, WorkflowResult, outcome_of_state

Json = dict[str, Any]
#: CRD answers meaning no prior-auth request is needed (CRD ``pa-needed`` codes).
NO_PA_NEEDED = frozenset({"no-auth", "satisfied"})
#: The chart DTR's payer logic reads: the patient's resources of these types.
CHART_TYPES = ("Condition", "Observation", "Procedure", "MedicationRequest", "Coverage", "Encounter",
               "ServiceRequest", "DeviceRequest")
_SYSTEMS = {"cpt": codes.CPT, "hcpcs": codes.HCPCS}
#: Errors after which trying the same order again later may succeed (the payer or network was down).
TRANSIENT = (PayerUnavailable, TransportError, LedgerError)


def is_transient(exc: FhirPaError) -> bool:
    """True when the same order may succeed later: an outage, not a refusal of the order itself."""
    return isinstance(exc, TRANSIENT) or (isinstance(exc, PayerRejected) and exc.status in (401, 408, 429))


@dataclass(frozen=True)
class WorkflowSettings:
    """How the workflow behaves where a person is not there to decide.

    ``documentation``: with no form hook, ``complete`` submits an order whose forms the chart completed and holds
    the rest as needs-documentation; ``hold`` holds every order that needs documentation for a person.
    ``track``: follow a pended request to its final decision (for at most ``track_timeout`` seconds).
    """

    documentation: Literal["complete", "hold"] = "complete"
    track: bool = True
    track_timeout: float | None = None
    chart_types: tuple[str, ...] = CHART_TYPES
    #: Who runs this workflow (a batch worker's name), written on every step.
    worker: str | None = None


@dataclass(frozen=True)
class FormTask:
    """A payer form the chart could not complete, handed to a person (the form hook)."""

    order_id: str
    package: QuestionnairePackage
    #: The response as prepopulated (answers carry their information-origin).
    response: Json
    #: What is still missing or wrong, located by linkId.
    missing: tuple[Issue, ...]

    @property
    def questionnaire(self) -> Json:
        return self.package.questionnaire


#: A person finishing a form: returns the completed response, or None to hold the order.
FormHook = Callable[[FormTask], Mapping[str, Any] | None]
AsyncFormHook = Callable[[FormTask], Awaitable[Mapping[str, Any] | None]]


@dataclass
class CrdOutcome:
    order: PriorAuthOrder
    submit: bool
    pa_needed: str | None
    answered: bool
    drafts: list[Json]
    handoffs: list[tuple[DtrHandoff, Json]] = field(default_factory=list)


@dataclass
class FilledForm:
    package: QuestionnairePackage
    response: Json
    missing: tuple[Issue, ...]


class Documents:
    """What DTR produced for one order: the QR Bundles to send, each form's outcome, and the forms held."""

    def __init__(self) -> None:
        self.bundles: list[Json] = []
        self.forms: list[FormOutcome] = []
        self.held: list[FilledForm] = []

    def attach(self, order: PriorAuthOrder) -> PriorAuthOrder:
        for bundle in self.bundles:
            order = attach_documentation(order, bundle)
        return order


class WorkflowCore:
    """The protocol shared by :class:`~fhir_pa.workflow.run.Workflow` and its async twin."""

    def __init__(self, payer_base: str, ledger: Ledger, settings: WorkflowSettings) -> None:
        self.payer = payer_base
        self.ledger = ledger
        self.settings = settings

    # -- the ledger's step log ----------------------------------------------------------------------------------

    def step(self, order_id: str, step: str, outcome: str, *, detail: str | None = None, body: Any = None,
             started: float | None = None) -> None:
        raw = None if body is None else body if isinstance(body, bytes) else json.dumps(
            body, separators=(",", ":"), default=str).encode()
        elapsed = None if started is None else int((time.perf_counter() - started) * 1000)
        self.ledger.steps.record(order_id=order_id, payer=self.payer, step=step, outcome=outcome, detail=detail,
                                 body=raw, elapsed_ms=elapsed, worker=self.settings.worker)

    def existing(self, order: PriorAuthOrder) -> LedgerRecord | None:
        """The PAS request already recorded for this order: then CRD and DTR are not asked again (the stored bytes
        are what the payer has, or will get)."""
        return self.ledger.find(payer=self.payer, order_id=order.order_id)

    # -- CRD -------------------------------------------------------------------------------------------------------

    def drafts(self, item: WorkflowOrder) -> list[Json]:
        """The order's service lines as draft ServiceRequests in the EHR (what order-sign is about)."""
        assert item.ehr is not None
        today = datetime.now(UTC).date().isoformat()
        drafts: list[Json] = []
        for n, line in enumerate(item.order.services, start=1):
            draft: Json = {"resourceType": "ServiceRequest", "id": _draft_id(item.order_id, n), "status": "draft",
                           "intent": "order", "authoredOn": today,
                           "code": {"coding": [{"system": _SYSTEMS[line.code_system], "code": line.code}]},
                           "subject": {"reference": f"Patient/{item.ehr.patient_id}"},
                           "requester": {"reference": item.ehr.user}}
            if item.ehr.encounter_id:
                draft["encounter"] = {"reference": f"Encounter/{item.ehr.encounter_id}"}
            if line.quantity is not None:
                draft["quantityQuantity"] = {"value": float(line.quantity)}
            drafts.append(draft)
        return drafts

    def crd_context(self, item: WorkflowOrder, drafts: list[Json], fhir_server: str) -> Json:
        assert item.ehr is not None
        return order_sign_context(user_id=item.ehr.user, patient_id=item.ehr.patient_id, draft_orders=drafts,
                                  fhir_server=fhir_server, encounter_id=item.ehr.encounter_id)

    def after_crd(self, item: WorkflowOrder, drafts: list[Json], result: CrdResult, started: float) -> CrdOutcome:
        """What CRD's answer means: the order carrying the payer's coverage information, whether to submit at all,
        and which lines need documentation first."""
        applied = [result.apply_to(draft) for draft in drafts]
        lines = [line.model_copy(update={"coverage_information": coverage_extensions(
            result, f"ServiceRequest/{draft['id']}") or line.coverage_information})
            for line, draft in zip(item.order.services, drafts, strict=True)]
        order = item.order.model_copy(update={"services": lines})
        decisions = [result.decision(f"ServiceRequest/{draft['id']}") for draft in drafts]
        answers = [d.pa_needed for d in decisions if d is not None]
        pa_needed = next((a for a in answers if a not in NO_PA_NEEDED), answers[0] if answers else None)
        # Submit unless the payer said, for every line, that no prior authorization is needed; a payer not heard
        # from (indeterminate) gets the request anyway: it is the payer's call, not ours.
        submit = not (result.answered and answers and len(answers) == len(drafts)
                      and all(a in NO_PA_NEEDED for a in answers))
        handoffs: list[tuple[DtrHandoff, Json]] = []
        for decision, draft in zip(decisions, applied, strict=True):
            # Only the payer's own answer names forms: a payer not heard gets the request without documentation.
            handoff = dtr_handoff(decision) if decision is not None and result.answered else None
            if handoff is not None and submit:
                handoffs.append((handoff, draft))
        summary = {"answered": result.answered, "pa_needed": pa_needed, "hook_instance": result.hook_instance,
                   "documentation": [h.questionnaires for h, _ in handoffs], "problem": result.problem}
        self.step(item.order_id, "crd", "answered" if result.answered else "not-heard",
                  detail=pa_needed or result.problem, body=summary, started=started)
        return CrdOutcome(order=order, submit=submit, pa_needed=pa_needed, answered=result.answered,
                          drafts=applied, handoffs=handoffs)

    def no_auth(self, item: WorkflowOrder, crd: CrdOutcome) -> WorkflowResult:
        self.step(item.order_id, "pas", "not-needed", detail=crd.pa_needed)
        return WorkflowResult(order_id=item.order_id, outcome="no-auth-needed", urgency=item.order.urgency,
                              pa_needed=crd.pa_needed, crd_answered=crd.answered, steps=("crd",))

    # -- DTR -------------------------------------------------------------------------------------------------------

    def chart_flow(self, fhir_server: str, item: WorkflowOrder) -> Flow[Json]:
        """The patient's chart from the EHR: the Patient and their resources of :attr:`~WorkflowSettings.chart_types`
        (DTR's payer logic retrieves from it). A type the EHR refuses is left out."""
        assert item.ehr is not None
        base = fhir_server.rstrip("/")
        patient = item.ehr.patient_id
        resources: list[Json] = []
        response = yield from exchange(httpx.Request("GET", f"{base}/Patient/{patient}", headers=_ACCEPT))
        if response.status_code != 200:
            raise InputError(f"the EHR has no readable Patient {patient}", path="ehr.patient_id")
        resources.append(response.json())
        for kind in self.settings.chart_types:
            response = yield from exchange(httpx.Request("GET", f"{base}/{kind}",
                                                         params={"patient": patient, "_count": 200}, headers=_ACCEPT))
            if response.status_code != 200:
                continue
            resources += [e["resource"] for e in response.json().get("entry") or [] if isinstance(e, dict)
                          and isinstance(e.get("resource"), dict)]
        return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}

    def coverage_of(self, chart: Json, item: WorkflowOrder, handoff: DtrHandoff) -> Json:
        wanted = item.ehr.coverage_id if item.ehr else None
        if wanted is None and handoff.coverage:
            wanted = handoff.coverage.rsplit("/", 1)[-1]
        coverages: list[Json] = [e["resource"] for e in chart["entry"]
                                 if e["resource"].get("resourceType") == "Coverage"]
        found = next((c for c in coverages if c.get("id") == wanted), None) if wanted else next(
            (c for c in coverages if c.get("status") == "active"), None)
        if found is None:
            raise InputError("the EHR holds no Coverage for this order" + (f" ({wanted})" if wanted else ""),
                             path="ehr.coverage_id")
        return found

    def fill(self, item: WorkflowOrder, package: QuestionnairePackage, chart: Json, draft: Json,
             coverage: Json) -> FilledForm:
        """Prepopulate one form from the chart (the draft order included) by running the payer's logic."""
        assert item.ehr is not None
        full = {**chart, "entry": [*chart["entry"], {"resource": draft}]}
        filled = populate(package.bundle, full, launch={
            "patient": f"Patient/{item.ehr.patient_id}", "service_request": f"ServiceRequest/{draft['id']}",
            "coverage": f"Coverage/{coverage['id']}"})
        missing = completion_issues(filled.response, package.questionnaire, valuesets=package.valuesets,
                                    draft=filled.response)
        return FilledForm(package, filled.response, tuple(i for i in missing if i.severity == "error"))

    def settle(self, item: WorkflowOrder, docs: Documents, form: FilledForm, answered: Mapping[str, Any] | None,
               coverage: Json, draft: Json, *, person: bool) -> None:
        """File one form: completed (by the chart or a person) goes into a QR Bundle for PAS, else it is held.

        Without a person, ``settings.documentation`` says whether a form the chart completed may go (``complete``)
        or every form waits for a person (``hold``).
        """
        hold = answered is None or (not person and (form.missing or self.settings.documentation == "hold"))
        if hold or answered is None:
            docs.held.append(form)
            docs.forms.append(_form_outcome(form.package.canonical, form.response, "held",
                                            tuple(i.path for i in form.missing)))
            return
        assert item.ehr is not None
        done = finish_response(answered, coverage=f"Coverage/{coverage['id']}",
                               orders=[f"ServiceRequest/{draft['id']}"], author=item.ehr.user)
        docs.bundles.append(qr_bundle(done))
        docs.forms.append(_form_outcome(form.package.canonical, done, None))

    def dtr_done(self, item: WorkflowOrder, docs: Documents, started: float) -> None:
        self.step(item.order_id, "dtr", "held" if docs.held else "completed",
                  detail=", ".join(f"{f.questionnaire}: {f.status}" for f in docs.forms), started=started)

    def held(self, item: WorkflowOrder, crd: CrdOutcome, forms: list[FormOutcome],
             held_forms: list[FilledForm]) -> WorkflowResult:
        """Keep the order for a person: the prepopulated forms are stored with the step, nothing is lost."""
        self.step(item.order_id, "hold", "needs-documentation",
                  detail="; ".join(f"{f.package.canonical}: {len(f.missing)} item(s) to answer" for f in held_forms),
                  body=[{"questionnaire": f.package.canonical, "response": f.response} for f in held_forms])
        return WorkflowResult(order_id=item.order_id, outcome="needs-documentation", urgency=item.order.urgency,
                              pa_needed=crd.pa_needed, crd_answered=crd.answered, forms=tuple(forms),
                              steps=("crd", "dtr", "hold"))

    # -- PAS -------------------------------------------------------------------------------------------------------

    def submitted(self, item: WorkflowOrder, submitted: SubmitResult, started: float) -> None:
        self.step(item.order_id, "pas", submitted.decision.status.value,
                  detail="sent" if submitted.sent else "answer on file", started=started)

    def result(self, item: WorkflowOrder, record_id: str, decision: PasDecision | None, *, sent: bool,
               crd: CrdOutcome | None, forms: list[FormOutcome]) -> WorkflowResult:
        record = self.ledger.get(record_id)
        outcome = outcome_of_state(record.state)
        error_code, error = record.error_code, record.error
        if outcome == "error" and error_code is None:  # the payer answered with ClaimResponse.error
            error_code = "payer-error"
            first = decision.errors[0] if decision is not None and decision.errors else None
            error = "the payer could not process the request" + (
                f": {first.code} {first.display or ''}".rstrip() if first is not None and first.code else "")
        return WorkflowResult(order_id=item.order_id, outcome=outcome, urgency=item.order.urgency, record=record,
                              decision=decision, pa_needed=crd.pa_needed if crd else None,
                              crd_answered=crd.answered if crd else None, forms=tuple(forms), sent=sent,
                              error_code=error_code, error=error)

    def tracked(self, result: WorkflowResult, tracked: TrackResult, started: float) -> WorkflowResult:
        self.step(result.order_id, "track", tracked.state, detail=f"via {tracked.channel or '?'}; {tracked.clock}",
                  started=started)
        record = self.ledger.get(tracked.record_id)
        return replace(result, outcome=outcome_of_state(record.state), record=record,
                       decision=tracked.decision or result.decision)

    def track_failed(self, result: WorkflowResult, exc: FhirPaError) -> WorkflowResult:
        """Tracking stopped on an error: the request stays pended in the ledger (a later run tracks it on)."""
        self.step(result.order_id, "track", "error", detail=exc.one_line())
        return replace(result, error_code=exc.code, error=exc.one_line(), transient=is_transient(exc))

    def failed(self, item: WorkflowOrder, exc: FhirPaError, *, crd: CrdOutcome | None,
               forms: list[FormOutcome]) -> WorkflowResult:
        self.step(item.order_id, "error", exc.code, detail=exc.one_line())
        record = self.ledger.find(payer=self.payer, order_id=item.order_id)
        return WorkflowResult(order_id=item.order_id, outcome="error", urgency=item.order.urgency, record=record,
                              pa_needed=crd.pa_needed if crd else None, crd_answered=crd.answered if crd else None,
                              forms=tuple(forms), error_code=exc.code, error=exc.one_line(),
                              transient=is_transient(exc))


_ACCEPT = {"Accept": "application/fhir+json"}


def _draft_id(order_id: str, n: int) -> str:
    """A FHIR id for the order's n-th line (ids allow letters, digits, '-' and '.', at most 64)."""
    clean = "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in order_id)[:58]
    return f"{clean}-{n}"


def _form_outcome(questionnaire: str | None, response: Mapping[str, Any], status: str | None,
                  missing: tuple[str, ...] = ()) -> FormOutcome:
    """A form's outcome from its answers; ``status`` None means completed: ``auto`` when the chart gave every
    answer, else ``completed`` (a person gave some)."""
    answers = [answer for _, _, answer in iter_answers(response)]
    auto = sum(read_source(a) == "auto-client" for a in answers)
    return FormOutcome(questionnaire, len(answers), auto, status or ("auto" if auto == len(answers) else "completed"),
                       missing)

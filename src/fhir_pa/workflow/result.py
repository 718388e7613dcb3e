"""What one order's workflow came to, and its row in a batch report."""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir_pa.batch.rows import BatchRow, Outcome
from fhir_pa.ledger.store import LedgerRecord
from fhir_pa.pas.decision import PasDecision

#: Ledger states that are an outcome of their own; every other final state maps through :data:`_BY_STATE`.
_BY_STATE: dict[str, Outcome] = {"approved": "approved", "denied": "denied", "partial": "partial",
                                 "modified": "modified", "cancelled": "cancelled", "pended": "pended"}


@dataclass(frozen=True)
class FormOutcome:
    """One DTR form of the order: whose answers completed it, or why it is held."""

    questionnaire: str | None
    answers: int
    auto: int
    #: auto (prepopulation completed it), completed (a person finished it), held (waiting for a person).
    status: str
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkflowResult:
    order_id: str
    outcome: Outcome
    urgency: str = "standard"
    #: The PAS request in the ledger (None when nothing was submitted).
    record: LedgerRecord | None = None
    decision: PasDecision | None = None
    #: CRD's prior-auth answer (auth-needed, no-auth, ...); None when CRD was not asked or not heard.
    pa_needed: str | None = None
    crd_answered: bool | None = None
    forms: tuple[FormOutcome, ...] = ()
    error_code: str | None = None
    error: str | None = None
    #: True when this call sent the PAS request (False: it was on file already, e.g. after a restart).
    sent: bool = False
    #: Whether a transient failure (payer down, network) ended the run: trying again later may succeed.
    transient: bool = False
    steps: tuple[str, ...] = field(default_factory=tuple)

    @property
    def documentation(self) -> str:
        if not self.forms:
            return "none"
        statuses = {form.status for form in self.forms}
        return "held" if "held" in statuses else "completed" if "completed" in statuses else "auto"

    def row(self, worker: str | None = None) -> BatchRow:
        record = self.record
        denial = denial_reasons(self.decision) if self.decision is not None else ()
        return BatchRow(
            order_id=self.order_id, outcome=self.outcome,
            urgency="expedited" if self.urgency == "expedited" else "standard",
            state=record.state if record else None, record_id=record.id if record else None,
            preauth_ref=record.preauth_ref if record else None,
            submitted_at=record.submitted_at if record else None, decided_at=record.decided_at if record else None,
            deadline_at=record.deadline_at if record else None,
            channel=record.decision_channel if record else None, pa_needed=self.pa_needed,
            documentation=self.documentation, denial_reasons=denial, error_code=self.error_code,
            error=self.error, worker=worker, attempts=record.attempts if record else 0)


def denial_reasons(decision: PasDecision) -> tuple[str, ...]:
    """The payer's reasons for its denied items, each once (display, else code), as a report shows them."""
    return tuple(dict.fromkeys(code.display or code.code or "?" for item in decision.items
                               if item.status.value == "denied" for code in item.reason_codes))


def outcome_of_state(state: str) -> Outcome:
    """The batch outcome of a ledger request state (errors and refusals are ``error``)."""
    return _BY_STATE.get(state, "error")

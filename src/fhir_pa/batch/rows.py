"""One row per order of a batch run: where it ended and how long the payer took. The report is built from these."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from fhir_pa.ledger.clock import Standing, standing

#: Where an order ended. ``pended``: submitted, still waiting for the payer when the run stopped tracking;
#: ``no-auth-needed``: CRD said no prior authorization is needed, nothing was submitted;
#: ``needs-documentation``: held for a person to finish the payer's form (batch documentation policy);
#: ``error``: a typed error stopped it (``error_code`` says which).
Outcome = Literal["approved", "denied", "partial", "modified", "pended", "cancelled", "no-auth-needed",
                  "needs-documentation", "error"]
OUTCOMES: tuple[Outcome, ...] = ("approved", "partial", "modified", "denied", "pended", "cancelled",
                                 "no-auth-needed", "needs-documentation", "error")
#: Where a submitted request stands on its CMS clock (72 h expedited, 7 calendar days standard).
Clock = Standing


@dataclass(frozen=True)
class BatchRow:
    order_id: str
    outcome: Outcome
    urgency: Literal["standard", "expedited"] = "standard"
    #: The ledger's request state (None when nothing was submitted).
    state: str | None = None
    record_id: str | None = None
    preauth_ref: str | None = None
    submitted_at: datetime | None = None
    decided_at: datetime | None = None
    deadline_at: datetime | None = None
    #: How the final answer came: submit, notification, poll, inquire.
    channel: str | None = None
    #: CRD's prior-auth answer for the order (auth-needed, no-auth, ...), None when CRD was not asked.
    pa_needed: str | None = None
    #: none, auto (prepopulation completed the form), completed (a person finished it), held.
    documentation: str = "none"
    #: Payer reasons given for denied items, as display text or code.
    denial_reasons: tuple[str, ...] = field(default_factory=tuple)
    error_code: str | None = None
    #: One line, never patient data.
    error: str | None = None
    worker: str | None = None
    #: $submit HTTP attempts the ledger counted.
    attempts: int = 0

    @property
    def decision_seconds(self) -> float | None:
        """Seconds from the first delivery to the final decision."""
        if self.submitted_at is None or self.decided_at is None:
            return None
        return (self.decided_at - self.submitted_at).total_seconds()

    def clock(self, now: datetime) -> Clock | None:
        """Where the request stands against its CMS clock at ``now`` (None: never reached the payer)."""
        return standing(self.deadline_at, self.decided_at, now)

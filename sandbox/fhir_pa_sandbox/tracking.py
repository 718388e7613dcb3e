"""Move cases along: open one per new request, decide pended items when due, apply updates, notify.

Pended items are decided one at a time, each as a new version of the case's ClaimResponse (same id,
``meta.versionId`` + 1) followed by one event notification with the full current response Bundle to every
``active`` Subscription whose filter matches the request's sending system id. Updates and cancels answer
synchronously and notify no one (as Inferno's Claim Updates workflow expects). Stats count every applied
update in ``updates`` and those that cancelled something (items or the whole request) in ``cancels``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fhir_pa_sandbox.cases import Case, decided_later, stamp
from fhir_pa_sandbox.decide import ItemDecision, decide
from fhir_pa_sandbox.parties import BundleFacts
from fhir_pa_sandbox.state import SandboxState
from fhir_pa_sandbox.updates import UpdatePlan, identifier_keys, sequence_of

log = logging.getLogger(__name__)


def open_case(state: SandboxState, bundle: Mapping[str, Any], decisions: Sequence[ItemDecision], *,
              key: str | None, fhir_base: str, claim_response_id: str | None = None) -> Case:
    """A new case for a newly decided request; its pended items are scheduled."""
    facts = BundleFacts(bundle)
    now = datetime.now(UTC)
    case = Case(key="", claim_response_id=claim_response_id or "", fhir_base=fhir_base, request=bundle,
                created=stamp(now), sender_id=facts.sender_id(), patient_keys=facts.patient_keys(),
                provider_npis=facts.provider_npis(), claim_identifiers=identifier_keys(facts.claim))
    scale = state.config.pend_delay_scale
    moment = time.monotonic()
    for decision in decisions:
        case.pend(decision, moment, scale)
    case.claim_response_id = case.claim_response_id or str(uuid.uuid4())
    case.key = key or case.claim_response_id
    with state.cases.lock:
        case.rebuild(now)
        state.cases.add(case)
    schedule(state, case)
    return case


def schedule(state: SandboxState, case: Case) -> None:
    """Wake the scheduler when the case's next pended item is due."""
    with state.cases.lock:
        if not case.due:
            return
        delay = min(case.due.values()) - time.monotonic()
    case_id = case.claim_response_id

    def job() -> None:
        decide_due(state, case_id)

    state.scheduler.at(delay, job)


def decide_due(state: SandboxState, claim_response_id: str, *, everything: bool = False) -> int:
    """Decide the case's pended items that are due (all of them with ``everything``); how many were decided."""
    case = state.cases.get(claim_response_id)
    if case is None:
        return 0
    decided = 0
    while True:
        with state.cases.lock:
            now = time.monotonic()
            ready = sorted(seq for seq, due in case.due.items() if everything or due <= now)
            if not ready:
                break
            sequence = ready[0]
            del case.due[sequence]
            final = decided_later(case.decisions[sequence])
            case.decisions[sequence] = final
            case.rebuild()
            snapshot, sender, base = case.snapshot(), case.sender_id, case.fhir_base
        decided += 1
        state.stats.count("decided_later", case.key)
        log.info("request %s item %d decided later: %s", case.key, sequence, final.rule.action)
        notify(state, sender, base, snapshot)
    schedule(state, case)
    return decided


def decide_all(state: SandboxState) -> int:
    """Decide every pended item of every case now (``POST /_sandbox/decide-pending``)."""
    return sum(decide_due(state, case.claim_response_id, everything=True) for case in state.cases.pending())


def notify(state: SandboxState, sender: str | None, fhir_base: str, response: Mapping[str, Any]) -> None:
    for held in state.subscriptions.for_sender(sender):
        state.deliverer.event(held, fhir_base, response)


def apply_update(state: SandboxState, case: Case, bundle: Mapping[str, Any], plan: UpdatePlan) -> None:
    """Apply a checked Claim Update to ``case`` (not closed): cancel, re-decide changed items, keep the rest."""
    facts = BundleFacts(bundle)
    fresh = {d.sequence: d for d in decide(facts.claim, state.rules)}
    items = facts.claim.get("item")
    scale = state.config.pend_delay_scale
    with state.cases.lock:
        moment = time.monotonic()
        before = set(case.cancelled)
        case.request = bundle
        case.sender_id = facts.sender_id() or case.sender_id
        if plan.cancel_all:
            case.cancel([*case.decisions, *fresh])
        for position, item in enumerate(items if isinstance(items, list) else []):
            if plan.cancel_all or not isinstance(item, Mapping):
                continue
            sequence = sequence_of(item, position)
            earlier = case.decisions.get(sequence)
            if sequence in plan.cancelled:
                case.cancel([sequence])
            elif sequence in plan.changed or (earlier is None and sequence not in case.cancelled):
                case.pend(fresh[sequence], moment, scale)
            elif earlier is not None:
                case.decisions[sequence] = replace(earlier, index=position, item=item)
        state.cases.index(case, identifier_keys(facts.claim))
        case.rebuild()
        newly_cancelled = bool(case.cancelled - before)
    state.stats.count("updates", case.key)
    if newly_cancelled:
        state.stats.count("cancels")
    schedule(state, case)

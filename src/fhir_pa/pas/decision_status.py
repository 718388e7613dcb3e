"""The overall status of a PAS decision, from the items' review actions.

Rules, first match wins:

1. ``outcome = error`` or any ``error[]``                  → error
2. any item A4 (pended)                                  → pended
3. no items: the ClaimResponse-level review action decides (A1 approved, A2 partial, A3 denied, A4 pended,
   A6 modified, C cancelled); none, or CT / NA / unknown   → unknown
4. any item with no readable X12 306 code, or CT (contact payer) → unknown: the answer cannot be read as
   a decision, so it is not final
5. the remaining items, ignoring C (cancelled by an update) and NA (no action required):
   none left                                             → cancelled if any item is C, else unknown
   all A1                                                → approved
   A6 only, or A6 with A1                                → modified (what was authorized is in ``addItem``)
   all A3                                                → denied
   any other mix of A1/A2/A3/A6, or A2 alone             → partial

``outcome`` never makes a request pended: 2.0.1 servers send ``queued``, which 2.2 forbids, while 2.2
payers send ``complete`` with A4 (pas.md §6.2).
"""

from __future__ import annotations

from collections.abc import Sequence

from fhir_pa.pas.decision_types import DecisionStatus, ItemStatus

_SINGLE: dict[ItemStatus, DecisionStatus] = {
    ItemStatus.APPROVED: DecisionStatus.APPROVED,
    ItemStatus.PARTIAL: DecisionStatus.PARTIAL,
    ItemStatus.DENIED: DecisionStatus.DENIED,
    ItemStatus.PENDED: DecisionStatus.PENDED,
    ItemStatus.MODIFIED: DecisionStatus.MODIFIED,
    ItemStatus.CANCELLED: DecisionStatus.CANCELLED,
}
_UNDECIDED = {ItemStatus.UNKNOWN, ItemStatus.CONTACT_PAYER}
_SET_ASIDE = {ItemStatus.CANCELLED, ItemStatus.NO_ACTION}


def overall_status(items: Sequence[ItemStatus], response_level: ItemStatus | None, *,
                   has_errors: bool) -> DecisionStatus:
    """The request's status from its item statuses (see the module docstring for the rules)."""
    if has_errors:
        return DecisionStatus.ERROR
    present = set(items)
    if ItemStatus.PENDED in present:
        return DecisionStatus.PENDED
    if not present:
        return _SINGLE.get(response_level, DecisionStatus.UNKNOWN) if response_level else DecisionStatus.UNKNOWN
    if present & _UNDECIDED:
        return DecisionStatus.UNKNOWN
    decided = present - _SET_ASIDE
    if not decided:  # only C and NA: cancelled if anything was cancelled, else nothing was decided
        return DecisionStatus.CANCELLED if ItemStatus.CANCELLED in present else DecisionStatus.UNKNOWN
    if decided == {ItemStatus.APPROVED}:
        return DecisionStatus.APPROVED
    if ItemStatus.MODIFIED in decided and decided <= {ItemStatus.APPROVED, ItemStatus.MODIFIED}:
        return DecisionStatus.MODIFIED
    if decided == {ItemStatus.DENIED}:
        return DecisionStatus.DENIED
    return DecisionStatus.PARTIAL

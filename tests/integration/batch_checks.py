"""What "exactly once" means for a batch run, checked against both sides: our ledger and the payer's counters.

Every order of the input is settled; every PAS request the ledger holds reached the sandbox and was decided there
exactly once; and the sandbox saw no request identifier we do not hold (a second, different request for an
order would show up as one).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fhir_pa.ledger.store import Ledger

#: Outcomes a healthy run ends in (the sandbox's rules give all of these; errors would be a failure here).
SETTLED = {"approved", "denied", "partial", "modified", "cancelled", "no-auth-needed", "needs-documentation"}


def check_exactly_once(ledger: Ledger, run_id: str, payer: str, stats_before: dict[str, Any],
                       stats_after: dict[str, Any], *, allow_errors: bool = False) -> Counter[str]:
    """Assert the run is complete and exactly-once; returns the outcome counts."""
    items = ledger.runs.items(run_id)
    assert items, "the run has no orders"
    not_done = [(i.order_id, i.status) for i in items if i.status != "done"]
    assert not not_done, f"{len(not_done)} orders not done, e.g. {not_done[:3]}"
    outcomes = Counter(i.outcome or "?" for i in items)
    unexpected = {o: n for o, n in outcomes.items() if o not in SETTLED and not (allow_errors and o == "error")}
    examples = [f"{i.order_id}: {i.error_code} {i.error}" for i in items if i.outcome not in SETTLED][:3]
    assert not unexpected, f"orders ended unexpectedly: {unexpected}; e.g. {'; '.join(examples)}"
    errors = [i for i in items if i.outcome == "error"]
    assert all(i.error_code for i in errors), "an error without a typed error code"

    orders = {i.order_id for i in items}
    records = [r for r in ledger.records() if r.payer == payer and r.order_id in orders]
    assert len({r.order_id for r in records}) == len(records), "two PAS requests for one order"
    submitted = {i.order_id for i in items if i.outcome not in ("no-auth-needed", "needs-documentation")}
    assert {r.order_id for r in records} >= {i.order_id for i in items if i.outcome in SETTLED - {
        "no-auth-needed", "needs-documentation"}}, "a decided order without its PAS request in the ledger"
    ours = {r.bundle_identifier for r in records}

    before, after = stats_before["by_identifier"], stats_after["by_identifier"]
    new = {key: counts for key, counts in after.items() if key not in before}
    extra = set(new) - ours
    assert not extra, f"the payer saw {len(extra)} request identifier(s) the ledger does not hold"
    missing = {r.bundle_identifier for r in records if r.submitted_at is not None} - set(new)
    assert not missing, f"{len(missing)} request(s) the ledger says were delivered never reached the payer"
    twice = {key: counts["decided"] for key, counts in new.items() if counts["decided"] != 1}
    assert not twice, f"requests decided other than once at the payer: {list(twice.items())[:3]}"
    assert len(new) == len([r for r in records if r.submitted_at is not None]) <= len(submitted)
    return outcomes

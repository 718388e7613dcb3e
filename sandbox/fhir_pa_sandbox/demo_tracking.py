"""The demo's pended cases that are followed to a final decision: one by notification, one by polling.

Each uses its own sending system id, so the Subscription made for the notification case is never told about
the polling case: the ``channel`` each row reports is the only way its final answer could have arrived.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fhir_pa.config import PayerConfig, PollSettings, Sender
from fhir_pa.ledger.store import Ledger
from fhir_pa.pas.order import PriorAuthOrder
from fhir_pa.pas.receiver import NotificationReceiver
from fhir_pa.pas.submit import PasClient
from fhir_pa.pas.subscription import SubscriptionSettings
from fhir_pa.pas.track import TrackResult
from fhir_pa.serve import AppServer
from fhir_pa_sandbox.demo_crd import CrdStep
from fhir_pa_sandbox.demo_orders import demo_order

#: name → (code, code system, final decision the default rules give, channel the final answer must use).
TRACKED: dict[str, tuple[str, str, str, str]] = {
    "pended-then-approved": ("27447", "cpt", "approved", "notification"),
    "pended-then-denied": ("29881", "cpt", "denied", "poll-read"),
}
#: Seconds a demo waits for a final decision before it reports the case as not final.
TRACK_TIMEOUT = 30.0


def tracked_order(case: str, index: int) -> PriorAuthOrder:
    code, system, _, _ = TRACKED[case]
    base = demo_order("pended", order_id=f"demo-{case}-{index}", index=index)
    services = [line.model_copy(update={"code": code, "code_system": system}) for line in base.services]
    return base.model_copy(update={"services": services})


def run_tracked(payer: PayerConfig, ledger: Ledger, *, first_index: int,
                crd: CrdStep | None = None) -> list[dict[str, Any]]:
    """Submit and track every case in :data:`TRACKED` (after CRD, when ``crd`` is given); one row per case."""
    rows: list[dict[str, Any]] = []
    with AppServer(NotificationReceiver(ledger), name="fhir-pa-demo-receiver") as receiver:
        for index, case in enumerate(TRACKED, start=first_index):
            _, _, final, channel = TRACKED[case]
            config = _config(payer, case, channel, f"{receiver.base_url}/notify")
            with PasClient(config, ledger=ledger) as client:
                if config.subscription is not None:
                    client.subscribe()
                order, coverage = crd.check(tracked_order(case, index)) if crd else (tracked_order(case, index), None)
                submitted = client.submit(order)
                result = client.track(submitted.record_id, timeout=TRACK_TIMEOUT)
            rows.append({**_row(case, submitted.decision.status.value, result, final, channel, ledger),
                         "crd": coverage})
    return rows


def _config(payer: PayerConfig, case: str, channel: str, endpoint: str) -> PayerConfig:
    sender = Sender(interchange_sender_id=f"DEMO{case.split('-')[-1].upper()}")
    if channel == "notification":
        # Notifications only: fallback polling after 60 s would be a sign the notification never came.
        poll = PollSettings(mode="read", fallback_after=60, ledger_check=0.05)
        return dataclasses.replace(payer, sender=sender, poll=poll,
                                   subscription=SubscriptionSettings(endpoint=endpoint))
    poll = PollSettings(mode="read", first_delay=0.5, max_delay=1.0, ledger_check=0.05)
    return dataclasses.replace(payer, sender=sender, poll=poll, subscription=None)


def _row(case: str, initial: str, result: TrackResult, final: str, channel: str,
         ledger: Ledger) -> dict[str, Any]:
    decision = result.decision
    return {
        "case": case,
        "status": result.state,
        "initial_status": initial,
        "channel": result.channel,
        "expected": final,
        "expected_channel": channel,
        "order_id": result.order_id,
        "record_id": result.record_id,
        "preauth_ref": decision.preauth_ref if decision else None,
        "items": [{"sequence": i.sequence, "review_action": i.review_action, "status": i.status.value,
                   "auth_number": i.auth_number} for i in (decision.items if decision else ())],
        "ledger_state": ledger.get(result.record_id).state,
        "clock": result.clock,
    }

"""Pended → final over real loopback: the sandbox payer, our notification receiver, and the tracker.

The sandbox here decides pended requests only when the test says so (``POST /_sandbox/decide-pending``), so
every test controls exactly when the payer makes up its mind.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.responses import Response

from fhir_pa.auth.keys import SigningKey, public_jwks, write_key_pair
from fhir_pa.config import PAS_SCOPES, SUBSCRIPTION_SCOPES, PayerConfig, PollSettings, Sender
from fhir_pa.fhir.retry import RetryPolicy
from fhir_pa.ledger.store import STALE, Ledger
from fhir_pa.pas.order import PriorAuthOrder
from fhir_pa.pas.receiver import DecisionUpdate, NotificationReceiver
from fhir_pa.pas.submit import AsyncPasClient, PasClient
from fhir_pa.pas.subscription import SubscriptionSettings
from fhir_pa.serve import AppServer
from fhir_pa_sandbox.config import SandboxConfig
from fhir_pa_sandbox.server import SandboxServer
from tests.integration.sandbox_helpers import wait_for

pytestmark = pytest.mark.integration
EXE = str(Path(sys.executable).with_name("fhir-pa"))
_ids = itertools.count()
PEND = {"code": "27447", "service_date": "2026-12-01", "quantity": 1, "unit": "visit"}
FAST_POLL = PollSettings(mode="auto", first_delay=0.1, max_delay=0.3, rate_limit=50, fallback_after=3600,
                         ledger_check=0.02, subscription_check=3600)


@pytest.fixture(scope="module")
def payer_server() -> Iterator[SandboxServer]:
    """A sandbox whose pended requests wait for the test to call decide-pending."""
    with SandboxServer(SandboxConfig(pend_delay_scale=100_000)) as server:
        yield server


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.at_path(tmp_path / "ledger.sqlite")


@pytest.fixture
def receiver(ledger: Ledger) -> Iterator[tuple[NotificationReceiver, AppServer, list[DecisionUpdate]]]:
    updates: list[DecisionUpdate] = []
    app = NotificationReceiver(ledger, on_update=updates.append)
    with AppServer(app, name="test-receiver") as server:
        yield app, server, updates


@pytest.fixture
def polling_payer(payer_server: SandboxServer, client_key: SigningKey, tmp_path: Path) -> PayerConfig:
    """A payer configuration with no Subscription: tracking polls."""
    client_id = f"tracking-{next(_ids)}"
    private_path, _ = write_key_pair(client_key, tmp_path / "keys")
    payer_server.register_client(client_id, public_jwks(client_key), [*PAS_SCOPES, *SUBSCRIPTION_SCOPES])
    return PayerConfig(fhir_base_url=payer_server.fhir_base, client_id=client_id, key_path=private_path,
                       sender=Sender(interchange_sender_id=f"SYS{client_id.upper()}"),
                       retry=RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05), poll=FAST_POLL)


@pytest.fixture
def notified_payer(polling_payer: PayerConfig,
                   receiver: tuple[NotificationReceiver, AppServer, list[DecisionUpdate]]) -> PayerConfig:
    """The same payer with a PAS Subscription pointing at our receiver."""
    _, server, _ = receiver
    return dataclasses.replace(polling_payer, subscription=SubscriptionSettings(endpoint=f"{server.base_url}/notify"))


def faults(server: SandboxServer, **knobs: Any) -> None:
    httpx.post(f"{server.base_url}/_sandbox/faults", json=knobs).raise_for_status()


@pytest.fixture(autouse=True)
def _reset(payer_server: SandboxServer) -> Iterator[None]:
    yield
    faults(payer_server, reset=True)


def decide_pending(server: SandboxServer) -> None:
    httpx.post(f"{server.base_url}/_sandbox/decide-pending").raise_for_status()


def pended_order(make_order: Callable[..., PriorAuthOrder]) -> PriorAuthOrder:
    return make_order(order_id=f"pend-{next(_ids)}", services=[PEND])


def test_pended_becomes_approved_by_notification(notified_payer: PayerConfig, ledger: Ledger,
                                                 payer_server: SandboxServer, make_order: Callable[..., PriorAuthOrder],
                                                 receiver: tuple[NotificationReceiver, AppServer,
                                                                 list[DecisionUpdate]]) -> None:
    _, _, updates = receiver
    with PasClient(notified_payer, ledger=ledger) as client:
        check = client.subscribe()
        assert check.renewed and check.record.status == "active", "the handshake reached our receiver"
        order = pended_order(make_order)
        submitted = client.submit(order)
        assert submitted.decision.status.value == "pended"
        decide_pending(payer_server)
        result = client.track(order.order_id, timeout=15)
    assert result.final and result.state == "approved"
    assert result.channel == "notification" and result.polls == 0
    assert result.decision is not None and result.decision.items[0].review_action == "A1"
    assert [u.decision.status.value for u in updates] == ["approved"]
    kinds = [n.type for n in ledger.notifications.all()]
    assert kinds.count("handshake") == 1 and kinds.count("event-notification") == 1


@pytest.mark.parametrize("mode", ["read", "search", "inquire"])
def test_pended_becomes_final_by_polling(mode: str, polling_payer: PayerConfig, ledger: Ledger,
                                         payer_server: SandboxServer,
                                         make_order: Callable[..., PriorAuthOrder]) -> None:
    payer = dataclasses.replace(polling_payer, poll=dataclasses.replace(FAST_POLL, mode=mode))  # type: ignore[arg-type]
    order = pended_order(make_order)
    with PasClient(payer, ledger=ledger) as client:
        assert client.submit(order).decision.status.value == "pended"
        still = client.track(order.order_id, timeout=0.6)
        assert not still.final and still.polls >= 1, "polled while the payer had not decided"
        decide_pending(payer_server)
        result = client.track(order.order_id, timeout=15)
    assert result.final and result.state == "approved"
    assert result.channel == {"read": "poll-read", "search": "poll-search", "inquire": "inquire"}[mode]
    kinds = {exchange.kind for exchange in ledger.exchanges(result.record_id)}
    assert result.channel in kinds, "every poll answer is kept in the ledger"


async def test_async_tracking_by_polling(polling_payer: PayerConfig, ledger: Ledger, payer_server: SandboxServer,
                                         make_order: Callable[..., PriorAuthOrder]) -> None:
    order = pended_order(make_order)
    async with AsyncPasClient(polling_payer, ledger=ledger) as client:
        assert (await client.submit(order)).decision.status.value == "pended"
        decide_pending(payer_server)
        result = await client.track(order.order_id, timeout=15)
    assert result.final and result.state == "approved" and result.channel == "poll-read"


@pytest.mark.parametrize("shape", ["pas-2.2", "flat-2.0.1", "ri", "id-only"])
def test_every_notification_shape_reaches_the_final_decision(
        shape: str, notified_payer: PayerConfig, ledger: Ledger, payer_server: SandboxServer,
        make_order: Callable[..., PriorAuthOrder]) -> None:
    order = pended_order(make_order)
    with PasClient(notified_payer, ledger=ledger) as client:
        client.subscribe()
        client.submit(order)
        faults(payer_server, notification_shape=shape)
        decide_pending(payer_server)
        result = client.track(order.order_id, timeout=15)
    assert result.final and result.state == "approved"
    wait_for(lambda: any(n.type == "event-notification" and n.outcome for n in ledger.notifications.all()))
    event = next(n for n in ledger.notifications.all() if n.type == "event-notification")
    if shape == "id-only":
        # No resources in the event: the receiver asks the tracker to read the ClaimResponse at once.
        assert event.outcome == "id-only" and result.channel == "poll-read"
    else:
        assert event.outcome == "applied" and result.channel == "notification"
        assert event.request_id == result.record_id


class _Flaky:
    """Our receiver behind a switch: while ``failing``, every request gets 503 (an EHR outage)."""

    def __init__(self, app: NotificationReceiver) -> None:
        self.app = app
        self.failing = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.failing and scope["type"] == "http":
            await Response(status_code=503)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def test_subscription_in_error_is_re_requested_and_the_missed_event_polled(
        polling_payer: PayerConfig, ledger: Ledger, payer_server: SandboxServer,
        make_order: Callable[..., PriorAuthOrder]) -> None:
    flaky = _Flaky(NotificationReceiver(ledger))
    with AppServer(flaky, name="flaky-receiver") as server:
        payer = dataclasses.replace(
            polling_payer, subscription=SubscriptionSettings(endpoint=f"{server.base_url}/notify"),
            poll=dataclasses.replace(FAST_POLL, subscription_check=0.2))
        order = pended_order(make_order)
        with PasClient(payer, ledger=ledger) as client:
            first = client.subscribe().record
            assert first.status == "active"
            client.submit(order)
            flaky.failing = True
            decide_pending(payer_server)
            remote = f"{payer.base}/Subscription/{first.remote_id}"
            wait_for(lambda: client.http.get(remote, auth=client.auth).json()["status"] == "error")
            flaky.failing = False
            result = client.track(order.order_id, timeout=15)
    assert result.final and result.state == "approved"
    assert result.channel == "poll-read", "the event was lost while we were down; a poll found the decision"
    after = ledger.subscriptions.by_id(first.id)
    assert after is not None and after.status == "active" and after.token_sha256 != first.token_sha256
    assert [n.type for n in ledger.notifications.all()] == ["handshake", "handshake"], "re-requested once"


def test_dropped_notification_is_recovered_by_polling(notified_payer: PayerConfig, ledger: Ledger,
                                                      payer_server: SandboxServer,
                                                      make_order: Callable[..., PriorAuthOrder]) -> None:
    payer = dataclasses.replace(notified_payer, poll=dataclasses.replace(FAST_POLL, fallback_after=0.5))
    order = pended_order(make_order)
    with PasClient(payer, ledger=ledger) as client:
        client.subscribe()
        client.submit(order)
        faults(payer_server, drop_notifications=1)
        decide_pending(payer_server)
        result = client.track(order.order_id, timeout=15)
    assert result.final and result.state == "approved"
    assert result.channel == "poll-read", "the notification was dropped, so polling found the decision"
    assert [n.type for n in ledger.notifications.all()] == ["handshake"]


def test_duplicate_and_out_of_order_notifications_change_nothing(
        notified_payer: PayerConfig, ledger: Ledger, payer_server: SandboxServer,
        make_order: Callable[..., PriorAuthOrder],
        receiver: tuple[NotificationReceiver, AppServer, list[DecisionUpdate]]) -> None:
    _, server, updates = receiver
    order = pended_order(make_order)
    with PasClient(notified_payer, ledger=ledger) as client:
        client.subscribe()
        client.submit(order)
        faults(payer_server, duplicate_notifications=1)
        decide_pending(payer_server)
        result = client.track(order.order_id, timeout=15)
    assert result.state == "approved" and result.channel == "notification"
    wait_for(lambda: sum(n.type == "event-notification" for n in ledger.notifications.all()) == 2)
    wait_for(lambda: all(n.outcome is not None for n in ledger.notifications.all()))
    outcomes = [n.outcome for n in ledger.notifications.all() if n.type == "event-notification"]
    assert outcomes == ["applied", "duplicate"]
    assert len(updates) == 1
    history = [event.state for event in ledger.history(result.record_id)]
    assert history.count("approved") == 1

    # An older event (lower number, still pended) arriving late must not move the request back.
    event = next(n for n in ledger.notifications.all() if n.type == "event-notification")
    stale_body = _older_pended_copy(event.body)
    record = ledger.get(result.record_id)
    token_ok = _replay_with_token(ledger, notified_payer)
    response = httpx.post(f"{server.base_url}/notify", content=stale_body,
                          headers={"Authorization": f"Bearer {token_ok}", "Content-Type": "application/fhir+json"})
    assert response.status_code == 200
    wait_for(lambda: all(n.outcome is not None for n in ledger.notifications.all()))
    assert ledger.notifications.all()[-1].outcome == STALE
    after = ledger.get(result.record_id)
    assert (after.state, after.decision_body, after.last_event_number) == (
        "approved", record.decision_body, record.last_event_number)


def _older_pended_copy(body: bytes) -> bytes:
    """The same notification renumbered one lower, with every review action set back to pended (A4)."""
    text = body.decode("utf-8")
    data = json.loads(text)
    params = data["entry"][0]["resource"]["parameter"]
    for param in params:
        if param.get("name") == "notification-event":
            for part in param["part"]:
                if part["name"] == "event-number":
                    number = int(part.get("valueString") or part.get("valueUnsignedInt") or part.get("valueInteger"))
                    for key in ("valueString", "valueUnsignedInt", "valueInteger"):
                        if key in part:
                            part[key] = str(number - 1) if key == "valueString" else number - 1
    return json.dumps(data).replace('"code": "A1"', '"code": "A4"').replace('"code":"A1"', '"code":"A4"').encode()


def _replay_with_token(ledger: Ledger, payer: PayerConfig) -> str:
    """Re-request the Subscription so the test knows a valid token (the ledger keeps only hashes)."""
    from fhir_pa.ledger.subscriptions import token_digest

    token = "test-known-token"
    record = ledger.subscriptions.all()[0]
    with ledger._tx() as conn:
        from sqlalchemy import update

        from fhir_pa.ledger.schema import subscriptions
        conn.execute(update(subscriptions).where(subscriptions.c.id == record.id)
                     .values(token_sha256=token_digest(token)))
    return token


def test_notification_without_the_token_is_refused_and_changes_nothing(
        notified_payer: PayerConfig, ledger: Ledger, make_order: Callable[..., PriorAuthOrder],
        receiver: tuple[NotificationReceiver, AppServer, list[DecisionUpdate]]) -> None:
    _, server, updates = receiver
    order = pended_order(make_order)
    with PasClient(notified_payer, ledger=ledger) as client:
        client.subscribe()
        submitted = client.submit(order)
    before = ledger.get(submitted.record_id)
    stored = len(ledger.notifications.all())
    forged = _forged_approval(before)
    for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": "Basic abc"}):
        response = httpx.post(f"{server.base_url}/notify", content=forged,
                              headers={**headers, "Content-Type": "application/fhir+json"})
        assert response.status_code == 401
        assert response.json()["resourceType"] == "OperationOutcome"
    time.sleep(0.2)
    after = ledger.get(submitted.record_id)
    assert (after.state, after.decision_body) == ("pended", before.decision_body)
    assert len(ledger.notifications.all()) == stored and updates == []


def _forged_approval(record: Any) -> bytes:
    response = json.loads(record.decision_body)
    text = json.dumps(response).replace('"A4"', '"A1"')
    bundle = json.loads(text)
    status = {"resourceType": "Parameters", "parameter": [
        {"name": "subscription", "valueReference": {"reference": "Subscription/x"}},
        {"name": "topic", "valueCanonical": "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic"},
        {"name": "status", "valueCode": "active"}, {"name": "type", "valueCode": "event-notification"},
        {"name": "notification-event", "part": [{"name": "event-number", "valueString": "99"},
                                                {"name": "focus", "valueReference": {"reference": "urn:uuid:b"}}]}]}
    return json.dumps({"resourceType": "Bundle", "type": "history", "entry": [
        {"fullUrl": "urn:uuid:a", "resource": status}, {"fullUrl": "urn:uuid:b", "resource": bundle}]}).encode()


def _cli_args(payer: PayerConfig, ledger_path: Path) -> list[str]:
    return ["--payer", payer.fhir_base_url, "--client-id", payer.client_id, "--key", str(payer.key_path),
            "--ledger", str(ledger_path)]


def test_tracker_killed_mid_wait_resumes_from_the_ledger(polling_payer: PayerConfig, payer_server: SandboxServer,
                                                          tmp_path: Path,
                                                          make_order: Callable[..., PriorAuthOrder]) -> None:
    ledger_path = tmp_path / "ledger.sqlite"
    order = pended_order(make_order)
    ledger = Ledger.at_path(ledger_path)
    with PasClient(polling_payer, ledger=ledger) as client:
        record_id = client.submit(order).record_id
    poll = ["--poll-first", "0.1", "--poll-max", "0.3"]
    args = [EXE, "track", order.order_id, *_cli_args(polling_payer, ledger_path), *poll, "--json"]
    tracker = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: ledger.get(record_id).polls >= 2, timeout=30)
    finally:
        os.kill(tracker.pid, signal.SIGKILL)
        tracker.wait(10)
    polls_before = ledger.get(record_id).polls
    assert ledger.get(record_id).state == "pended"
    decide_pending(payer_server)
    again = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0, again.stderr
    view = json.loads(again.stdout)
    assert view["final"] is True and view["state"] == "approved" and view["channel"] == "poll-read"
    assert view["polls"] > polls_before, "the restarted tracker continued the same backoff"
    assert view["clock"] == "decided in time"
    assert len(ledger.records()) == 1, "nothing was submitted again"


def test_update_then_cancel_through_the_cli(polling_payer: PayerConfig, tmp_path: Path,
                                            make_order: Callable[..., PriorAuthOrder]) -> None:
    from tests.conftest import order_data

    ledger_path = tmp_path / "ledger.sqlite"
    order_id = f"upd-{next(_ids)}"
    first = order_data(order_id=order_id, services=[
        {"code": "72148", "service_date": "2026-12-01", "quantity": 1, "unit": "visit"}, PEND])
    (tmp_path / "order.json").write_text(json.dumps(first))
    common = _cli_args(polling_payer, ledger_path)
    sent = subprocess.run([EXE, "submit", str(tmp_path / "order.json"), *common, "--json"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert sent.returncode == 0, sent.stderr
    edited = {**first, "services": [{**PEND, "sequence": 2, "quantity": 2},
                                    {"code": "97110", "sequence": 3, "service_date": "2026-12-02"}]}
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    updated = subprocess.run([EXE, "update", str(tmp_path / "edited.json"), *common, "--json"],
                             capture_output=True, text=True, timeout=60, check=False)
    assert updated.returncode == 0, updated.stderr
    items = {item["sequence"]: item["status"] for item in json.loads(updated.stdout)["items"]}
    assert items[1] == "cancelled" and items[3] == "denied"
    inquired = subprocess.run([EXE, "inquire", order_id, *common, "--json"], capture_output=True, text=True,
                              timeout=60, check=False)
    assert inquired.returncode == 0, inquired.stderr
    assert json.loads(inquired.stdout)["found"] is True
    cancelled = subprocess.run([EXE, "cancel", order_id, *common, "--json"], capture_output=True, text=True,
                               timeout=60, check=False)
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    ledger = Ledger.at_path(ledger_path)
    kinds = sorted(record.kind for record in ledger.records())
    assert kinds == ["cancel", "submit", "update"]
    again = subprocess.run([EXE, "cancel", order_id, *common, "--json"], capture_output=True, text=True,
                           timeout=60, check=False)
    assert again.returncode != 0 or json.loads(again.stdout)["sent"] is False

"""The notification receiver as an ASGI app (Starlette's test client; real SQLite ledger)."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from fhir_pa.ledger.store import Ledger, LedgerRecord
from fhir_pa.pas.receiver import DecisionUpdate, NotificationReceiver
from tests.conftest import load_fixture

PAYER = "https://payer.test/fhir"
TOKEN = "s3cret-token-for-tests"
#: The request identifier the IG's notification example echoes in its ClaimResponse.
CLAIM_ID = "http://example.org/PATIENT_EVENT_TRACE_NUMBER|111099"


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    store = Ledger.at_path(tmp_path / "ledger.sqlite")
    store.subscriptions.save(payer=PAYER, sending_system_id="SYS1", endpoint="http://ehr/notify", status="active",
                             token=TOKEN, remote_id="sub-1", remote_url=None, error=None, at=datetime.now(UTC))
    return store


def _pended(ledger: Ledger) -> LedgerRecord:
    record = ledger.record_intent(order_id="o1", payer=PAYER, bundle_identifier="sys|b1", claim_identifier=CLAIM_ID,
                                  urgency="standard", body=b"{}")
    ledger.record_exchange(record.id, kind="submit", url="u", body=b"{}", started_at=datetime.now(UTC),
                           delivery="sent", status_code=200, response_body=b"{}")
    ledger.set_state(record.id, "pended")
    return ledger.get(record.id)


def _notification() -> dict[str, Any]:
    return load_fixture("pas", "Bundle-PASSubscriptionNotification.json")  # type: ignore[no-any-return]


def _with_event_number(body: dict[str, Any], number: int) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    for param in changed["entry"][0]["resource"]["parameter"]:
        for part in param.get("part", []):
            if part["name"] == "event-number":
                part["valueString"] = str(number)
    return changed


def _as_pended(node: Any) -> Any:
    """The same notification, but every X12 review action A1 (certified) turned into A4 (pended)."""
    if isinstance(node, dict):
        return {k: ("A4" if k == "code" and v == "A1" else _as_pended(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_as_pended(v) for v in node]
    return node


def _post(client: TestClient, body: dict[str, Any] | bytes, token: str | None = TOKEN) -> int:
    headers = {"Content-Type": "application/fhir+json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    status: int = client.post("/notify", content=content, headers=headers).status_code
    return status


def test_event_notification_updates_the_request_once(ledger: Ledger) -> None:
    record = _pended(ledger)
    updates: list[DecisionUpdate] = []
    with TestClient(NotificationReceiver(ledger, on_update=updates.append)) as client:
        assert _post(client, _notification()) == 200
        assert _post(client, _notification()) == 200, "a duplicate is acknowledged too"
    after = ledger.get(record.id)
    assert after.state != "pended" and after.decision_channel == "notification"
    assert [u.record.id for u in updates] == [record.id], "the duplicate changed nothing"
    outcomes = [n.outcome for n in ledger.notifications.all()]
    assert outcomes == ["applied", "duplicate"]


def test_older_event_arriving_late_is_stale(ledger: Ledger) -> None:
    record = _pended(ledger)
    with TestClient(NotificationReceiver(ledger)) as client:
        assert _post(client, _with_event_number(_notification(), 5)) == 200
        decided = ledger.get(record.id)
        late = _as_pended(_with_event_number(_notification(), 4))
        assert _post(client, late) == 200
    after = ledger.get(record.id)
    assert (after.state, after.decision_body) == (decided.state, decided.decision_body)
    assert ledger.notifications.all()[-1].outcome == "stale"


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_unauthenticated_notification_is_refused_and_not_stored(ledger: Ledger, token: str | None) -> None:
    record = _pended(ledger)
    with TestClient(NotificationReceiver(ledger)) as client:
        assert _post(client, _notification(), token=token) == 401
    assert ledger.notifications.all() == []
    assert ledger.get(record.id).state == "pended"


def test_handshake_and_garbage_are_kept_and_marked(ledger: Ledger) -> None:
    handshake = {"resourceType": "Bundle", "type": "history", "entry": [{"resource": {
        "resourceType": "Parameters", "parameter": [
            {"name": "subscription", "valueReference": {"reference": "Subscription/sub-1"}},
            {"name": "type", "valueCode": "handshake"}, {"name": "status", "valueCode": "requested"}]}}]}
    with TestClient(NotificationReceiver(ledger)) as client:
        assert _post(client, handshake) == 200
        assert _post(client, b"not json at all") == 200, "the payer gets its 2xx; the body is kept for people"
    stored = ledger.notifications.all()
    assert [n.outcome for n in stored] == ["handshake", "invalid"]
    assert stored[1].body == b"not json at all"


def test_recover_processes_what_a_crash_left_unprocessed(ledger: Ledger) -> None:
    record = _pended(ledger)
    subscription = ledger.subscriptions.get(PAYER, "SYS1")
    assert subscription is not None
    ledger.notifications.store(json.dumps(_notification()).encode(), received_at=datetime.now(UTC),
                               subscription=subscription.id)
    updates: list[DecisionUpdate] = []
    receiver = NotificationReceiver(ledger, on_update=updates.append)
    assert asyncio.run(receiver.recover()) == 1
    assert ledger.get(record.id).state != "pended" and len(updates) == 1
    assert asyncio.run(receiver.recover()) == 0


def test_the_receiver_publishes_our_public_jwks_and_refuses_private_keys(ledger: Ledger) -> None:
    from fhir_pa.auth.keys import generate_key, public_jwks
    from fhir_pa.errors import ConfigurationError

    key = generate_key("ES384")
    with TestClient(NotificationReceiver(ledger, jwks=public_jwks(key))) as client:
        published = client.get("/jwks.json").json()
    assert published == public_jwks(key) and "d" not in published["keys"][0]
    with pytest.raises(ConfigurationError):
        NotificationReceiver(ledger, jwks={"keys": [key.private_jwk()]})
    with TestClient(NotificationReceiver(ledger)) as client:
        assert client.get("/jwks.json").status_code in (404, 405)

"""The ledger's tracking side: applying later answers safely, matching them to requests, notifications,
subscriptions, and upgrading a ledger written before these columns existed."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fhir_pa.ledger.store import APPLIED, STALE, UNCHANGED, Ledger, LedgerRecord


def _sent(ledger: Ledger, order_id: str = "o1", *, prior: LedgerRecord | None = None, kind: str = "submit",
          state: str = "pended") -> LedgerRecord:
    record = ledger.record_intent(order_id=order_id, payer="http://payer", bundle_identifier=f"sys|b-{order_id}",
                                  claim_identifier=f"urn:trnorg:x|c-{order_id}", urgency="standard", body=b"{}",
                                  kind=kind, prior=prior)
    ledger.record_exchange(record.id, kind="submit", url="u", body=b"{}", started_at=datetime.now(UTC),
                           delivery="sent", status_code=200, response_body=b"{}")
    ledger.set_state(record.id, state, claim_response_id=f"cr-{order_id}", decision_body=b"{}", channel="submit")
    return ledger.get(record.id)


@pytest.fixture()
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.at_path(tmp_path / "ledger.sqlite")


def test_final_decision_is_never_regressed_by_a_late_pend(ledger: Ledger) -> None:
    record = _sent(ledger)
    assert ledger.advance(record.id, "approved", channel="notification", body=b"A", preauth_ref="PA1") == APPLIED
    assert ledger.advance(record.id, "pended", channel="poll-read", body=b"P") == STALE
    after = ledger.get(record.id)
    assert (after.state, after.decision_body, after.preauth_ref, after.decision_channel) == (
        "approved", b"A", "PA1", "notification")
    assert after.decided_at is not None


def test_older_event_from_the_same_subscription_is_stale(ledger: Ledger) -> None:
    record = _sent(ledger)
    assert ledger.advance(record.id, "denied", channel="notification", body=b"7", event_number=7,
                          event_source="s1") == APPLIED
    assert ledger.advance(record.id, "approved", channel="notification", body=b"5", event_number=5,
                          event_source="s1") == STALE
    assert ledger.get(record.id).state == "denied"
    # the same news again changes nothing and is reported as such
    assert ledger.advance(record.id, "denied", channel="poll-read", body=b"x") == UNCHANGED
    assert ledger.get(record.id).decision_body == b"7"
    history = [event.state for event in ledger.history(record.id)]
    assert history.count("denied") == 1


def test_match_finds_the_newest_request_of_the_case(ledger: Ledger) -> None:
    original = _sent(ledger, "o1")
    update = _sent(ledger, "o1#update-1", prior=original, kind="update")
    _sent(ledger, "o2")
    assert update.case_id == original.id and update.prior_id == original.id
    for kwargs in ({"identifiers": ["urn:trnorg:x|c-o1"]}, {"identifiers": ["c-o1"]},
                   {"claim_response_id": "cr-o1"}, {"identifiers": ["sys|b-o1#update-1"]}):
        found = ledger.match(**kwargs)
        assert found is not None and found.id == update.id, kwargs
    assert ledger.match(identifiers=["nobody"]) is None
    assert ledger.lookup("o1").id == update.id
    assert ledger.lookup(original.id).id == update.id


def test_notifications_are_kept_and_duplicates_recognised(ledger: Ledger) -> None:
    first = ledger.notifications.store(b"one", received_at=datetime.now(UTC), subscription="s1")
    assert [n.id for n in ledger.notifications.unprocessed()] == [first]
    ledger.notifications.mark(first, outcome="applied", subscription="s1", event_number=3, focus="f")
    second = ledger.notifications.store(b"two", received_at=datetime.now(UTC), subscription="s1")
    assert ledger.notifications.seen("s1", 3, "f", before=second)
    assert not ledger.notifications.seen("s1", 4, "f", before=second)
    assert not ledger.notifications.seen("s2", 3, "f", before=second)
    assert [n.body for n in ledger.notifications.all()] == [b"one", b"two"]


def test_subscription_token_is_stored_only_as_a_hash(ledger: Ledger, tmp_path: Path) -> None:
    at = datetime.now(UTC)
    record = ledger.subscriptions.save(payer="http://payer", sending_system_id="SYS", endpoint="http://me/n",
                                       status="requested", token="s3cret-token", remote_id="r1", remote_url=None,
                                       error=None, at=at)
    assert ledger.subscriptions.authenticate("s3cret-token") == record
    assert ledger.subscriptions.authenticate("s3cret-tokeN") is None
    raw = (tmp_path / "ledger.sqlite").read_bytes()
    assert b"s3cret-token" not in raw
    renewed = ledger.subscriptions.save(payer="http://payer", sending_system_id="SYS", endpoint="http://me/n",
                                        status="requested", token="new-token", remote_id="r1", remote_url=None,
                                        error=None, at=at + timedelta(seconds=1))
    assert renewed.id == record.id
    assert ledger.subscriptions.authenticate("s3cret-token") is None
    assert ledger.subscriptions.authenticate("new-token") is not None


def test_a_ledger_from_before_tracking_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # the issue-2 schema of the requests table
        conn.execute("""CREATE TABLE requests (id VARCHAR(36) PRIMARY KEY, order_id VARCHAR(200) NOT NULL,
            payer VARCHAR(500) NOT NULL, bundle_identifier VARCHAR(300) NOT NULL UNIQUE,
            claim_identifier VARCHAR(300) NOT NULL, urgency VARCHAR(20) NOT NULL, state VARCHAR(30) NOT NULL,
            created_at DATETIME NOT NULL, submitted_at DATETIME, decided_at DATETIME, deadline_at DATETIME,
            preauth_ref VARCHAR(200), claim_response_id VARCHAR(200), attempts INTEGER NOT NULL,
            error_code VARCHAR(50), error TEXT, request_body BLOB NOT NULL, request_sha256 VARCHAR(64) NOT NULL)""")
        conn.execute("INSERT INTO requests VALUES ('r1','o1','http://payer','b','c','standard','pended',"
                     "'2026-11-01 00:00:00',NULL,NULL,NULL,NULL,NULL,1,NULL,NULL,X'7B7D','h')")
    ledger = Ledger.at_path(path)
    old = ledger.get("r1")
    assert (old.state, old.kind, old.polls, old.request_body) == ("pended", "submit", 0, b"{}")
    assert ledger.advance("r1", "approved", channel="poll-read", body=b"A") == APPLIED

"""The ledger's tracking side: applying later answers safely, matching them to requests, notifications,
subscriptions, and upgrading a ledger written before these columns existed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import MetaData, Table, create_engine, insert, select

from fhir_pa.ledger.schema import metadata, requests
from fhir_pa.ledger.store import APPLIED, STALE, UNCHANGED, Ledger, LedgerRecord
from fhir_pa.ledger.upgrade import add_missing_columns


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
def ledger(ledger_url: str) -> Iterator[Ledger]:
    store = Ledger(ledger_url)
    yield store
    store.close()


def _all_stored_values(ledger: Ledger) -> str:
    """Every value in every ledger table, as text: what anyone reading the database would see."""
    with ledger.engine.connect() as conn:
        return repr([conn.execute(select(table)).all() for table in metadata.sorted_tables])


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
    stored = _all_stored_values(ledger)
    assert record.token_sha256 in stored and "s3cret-token" not in stored
    if ledger.engine.dialect.name == "sqlite":  # the file itself, and its write-ahead log, where new rows land first
        raw = b"".join(path.read_bytes() for path in tmp_path.glob("ledger.sqlite*"))
        assert record.token_sha256.encode() in raw and b"s3cret-token" not in raw
    renewed = ledger.subscriptions.save(payer="http://payer", sending_system_id="SYS", endpoint="http://me/n",
                                        status="requested", token="new-token", remote_id="r1", remote_url=None,
                                        error=None, at=at + timedelta(seconds=1))
    assert renewed.id == record.id
    assert ledger.subscriptions.authenticate("s3cret-token") is None
    assert ledger.subscriptions.authenticate("new-token") is not None


#: The columns of the requests table before tracking (issue 2); the rest were added since.
_ISSUE_2_COLUMNS = ("id", "order_id", "payer", "bundle_identifier", "claim_identifier", "urgency", "state",
                    "created_at", "submitted_at", "decided_at", "deadline_at", "preauth_ref", "claim_response_id",
                    "attempts", "error_code", "error", "request_body", "request_sha256")


def _write_issue_2_ledger(url: str, path: Path) -> None:
    if url.startswith("sqlite"):  # byte for byte what that version created
        with sqlite3.connect(path) as conn:
            conn.execute("""CREATE TABLE requests (id VARCHAR(36) PRIMARY KEY, order_id VARCHAR(200) NOT NULL,
                payer VARCHAR(500) NOT NULL, bundle_identifier VARCHAR(300) NOT NULL UNIQUE,
                claim_identifier VARCHAR(300) NOT NULL, urgency VARCHAR(20) NOT NULL, state VARCHAR(30) NOT NULL,
                created_at DATETIME NOT NULL, submitted_at DATETIME, decided_at DATETIME, deadline_at DATETIME,
                preauth_ref VARCHAR(200), claim_response_id VARCHAR(200), attempts INTEGER NOT NULL,
                error_code VARCHAR(50), error TEXT, request_body BLOB NOT NULL, request_sha256 VARCHAR(64) NOT NULL)""")
            conn.execute("INSERT INTO requests VALUES ('r1','o1','http://payer','b','c','standard','pended',"
                         "'2026-11-01 00:00:00',NULL,NULL,NULL,NULL,NULL,1,NULL,NULL,X'7B7D','h')")
        return
    old = Table("requests", MetaData(),
                *(column._copy() for column in requests.columns if column.name in _ISSUE_2_COLUMNS))
    engine = create_engine(url)
    with engine.begin() as conn:
        old.create(conn)
        conn.execute(insert(old).values(id="r1", order_id="o1", payer="http://payer", bundle_identifier="b",
                                        claim_identifier="c", urgency="standard", state="pended",
                                        created_at=datetime(2026, 11, 1, tzinfo=UTC), attempts=1,
                                        request_body=b"{}", request_sha256="h"))
    engine.dispose()


def test_a_ledger_from_before_tracking_is_upgraded_in_place(ledger_url: str, tmp_path: Path) -> None:
    _write_issue_2_ledger(ledger_url, tmp_path / "ledger.sqlite")
    ledger = Ledger(ledger_url)
    old = ledger.get("r1")
    assert (old.state, old.kind, old.polls, old.request_body) == ("pended", "submit", 0, b"{}")
    assert old.created_at == datetime(2026, 11, 1, tzinfo=UTC)
    assert ledger.advance("r1", "approved", channel="poll-read", body=b"A") == APPLIED
    assert add_missing_columns(ledger.engine, metadata) == []  # upgraded once, nothing left to add
    ledger.close()


def test_event_numbers_beyond_32_bits_are_kept(ledger: Ledger) -> None:
    """Payers count events as integer64 (events-since-subscription-start)."""
    big = 2**40 + 3
    record = _sent(ledger)
    assert ledger.advance(record.id, "approved", channel="notification", body=b"A", event_number=big,
                          event_source="s1") == APPLIED
    assert ledger.get(record.id).last_event_number == big
    assert ledger.advance(record.id, "denied", channel="notification", body=b"D", event_number=big - 1,
                          event_source="s1") == STALE
    first = ledger.notifications.store(b"one", received_at=datetime.now(UTC), subscription="s1")
    ledger.notifications.mark(first, outcome="applied", subscription="s1", event_number=big, focus="f")
    assert ledger.notifications.seen("s1", big, "f", before=first + 1)
    subscription = ledger.subscriptions.save(payer="http://payer", sending_system_id="SYS", endpoint="e",
                                             status="active", token="t", remote_id="r1", remote_url=None,
                                             error=None, at=datetime.now(UTC))
    ledger.subscriptions.heard(subscription.id, at=datetime.now(UTC), event_number=big)
    assert ledger.subscriptions.all()[0].last_event_number == big


def test_long_values_from_a_payer_are_kept_whole(ledger: Ledger) -> None:
    """What a payer sends (ids, references, headers) has no length we could rely on; SQLite never checks,
    PostgreSQL refuses values longer than a VARCHAR's bound."""
    long = "x" * 1500
    record = _sent(ledger)
    ledger.record_exchange(record.id, kind="poll-read", url="u", body=b"{}", started_at=datetime.now(UTC),
                           delivery="sent", status_code=200, content_type=f"application/fhir+json; {long}")
    assert ledger.advance(record.id, "approved", channel="poll-read", body=b"A", preauth_ref=long,
                          claim_response_id=long) == APPLIED
    after = ledger.get(record.id)
    assert (after.preauth_ref, after.claim_response_id) == (long, long)
    assert ledger.exchanges(record.id)[-1].content_type == f"application/fhir+json; {long}"
    note = ledger.notifications.store(b"n", received_at=datetime.now(UTC))
    ledger.notifications.mark(note, outcome="applied", focus=f"http://payer/ClaimResponse/{long}")
    assert ledger.notifications.all()[0].focus == f"http://payer/ClaimResponse/{long}"
    ledger.subscriptions.save(payer="http://payer", sending_system_id="SYS", endpoint="e", status=long, token="t",
                              remote_id=long, remote_url=f"http://payer/Subscription/{long}", error=None,
                              at=datetime.now(UTC))
    saved = ledger.subscriptions.all()[0]
    assert (saved.status, saved.remote_id) == (long, long)

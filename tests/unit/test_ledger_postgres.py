"""The ledger where PostgreSQL differs from a SQLite file: several processes share one server, rows are locked
rather than the whole database, and its URLs can carry credentials."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, select, update

from fhir_pa.errors import LedgerError
from fhir_pa.ledger.schema import requests
from fhir_pa.ledger.store import APPLIED, STALE, Ledger

ROUNDS = 20


def _race(url: str, name: str, barrier: Barrier, results: Queue[tuple[str, list[str] | str]]) -> None:
    """One racer: opens the ledger at the same moment as the other, then records the same orders with it."""
    try:
        barrier.wait()
        ledger = Ledger(url)
        ids = []
        for n in range(ROUNDS):
            barrier.wait()
            ids.append(ledger.record_intent(order_id=f"o{n}", payer="http://payer", bundle_identifier=f"sys|{name}-{n}",
                                            claim_identifier=f"trn|{name}-{n}", urgency="standard",
                                            body=name.encode()).id)
        results.put((name, ids))
    except BaseException as exc:
        results.put((name, repr(exc)))
        raise


def test_two_processes_racing_record_intent_get_one_request(postgres_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2, timeout=60)
    results: Queue[tuple[str, list[str] | str]] = context.Queue()
    racers = [context.Process(target=_race, args=(postgres_url, name, barrier, results)) for name in ("a", "b")]
    for racer in racers:
        racer.start()
    got = dict(results.get(timeout=120) for _ in racers)
    for racer in racers:
        racer.join(30)
        assert racer.exitcode == 0, got
    assert isinstance(got["a"], list) and isinstance(got["b"], list), got
    assert got["a"] == got["b"] and len(set(got["a"])) == ROUNDS
    ledger = Ledger(postgres_url)
    records = {record.order_id: record for record in ledger.records()}
    assert len(ledger.records()) == ROUNDS
    assert [records[f"o{n}"].id for n in range(ROUNDS)] == got["a"]
    for record in records.values():  # the winner's bytes, and only the winner wrote history
        assert record.bundle_identifier.removeprefix("sys|").split("-")[0] == record.request_body.decode()
        assert [event.state for event in ledger.history(record.id)] == ["prepared"]
    ledger.close()


def _while_locked(url: str, record_id: str, other: Callable[[Connection], Any], call: Callable[[], Any]) -> list[Any]:
    """Run ``call`` in a thread while another transaction holds the request's row and changes it, then commits."""
    engine = create_engine(url)
    outcome: list[Any] = []
    with engine.connect() as conn, conn.begin():
        # the lock an UPDATE of this row takes (it does not block inserts that merely reference the row)
        conn.execute(select(requests.c.id).where(requests.c.id == record_id).with_for_update(key_share=True))
        worker = threading.Thread(target=lambda: outcome.append(call()))
        worker.start()
        time.sleep(0.5)  # long enough for ``call`` to read the row, if it reads without waiting for the lock
        other(conn)
    worker.join(30)
    engine.dispose()
    return outcome


def test_an_older_event_racing_a_newer_one_is_still_stale(postgres_url: str) -> None:
    ledger = Ledger(postgres_url)
    record = ledger.record_intent(order_id="o1", payer="http://payer", bundle_identifier="sys|b", claim_identifier="c",
                                  urgency="standard", body=b"{}")
    ledger.set_state(record.id, "pended")
    newer = update(requests).where(requests.c.id == record.id).values(
        state="denied", last_event_number=7, last_event_source="s1", decided_at=datetime.now(UTC))
    verdicts = _while_locked(postgres_url, record.id, lambda conn: conn.execute(newer), lambda: ledger.advance(
        record.id, "approved", channel="notification", body=b"5", event_number=5, event_source="s1"))
    assert verdicts == [STALE]
    assert ledger.get(record.id).state == "denied"
    ledger.close()


def test_attempts_are_counted_across_processes(postgres_url: str) -> None:
    ledger = Ledger(postgres_url)
    record = ledger.record_intent(order_id="o1", payer="http://payer", bundle_identifier="sys|b", claim_identifier="c",
                                  urgency="standard", body=b"{}")
    elsewhere = update(requests).where(requests.c.id == record.id).values(attempts=requests.c.attempts + 1)
    _while_locked(postgres_url, record.id, lambda conn: conn.execute(elsewhere), lambda: ledger.record_exchange(
        record.id, kind="submit", url="u", body=b"{}", started_at=datetime.now(UTC), delivery="not-sent"))
    assert ledger.get(record.id).attempts == 2
    assert ledger.advance(record.id, "approved", channel="poll-read", body=b"A") == APPLIED
    ledger.close()


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://alice:hunter2@127.0.0.1:1/ledger", "at 127.0.0.1:1/ledger:"),
    ("postgresql+psycopg://alice:hun@ter2@127.0.0.1:1/ledger", "at 127.0.0.1:1/ledger:"),  # unencoded @, / and ?
    ("postgresql+psycopg://alice:hun/te?r2@127.0.0.1:1/ledger", "at postgresql+psycopg://(location not shown):"),
    ("postgresql+psycopg://127.0.0.1:1/ledger?user=alice&password=hunter2", "at 127.0.0.1:1/ledger:"),
    ("postgresql+psycopg://127.0.0.1:1/ledger?password=hun@ter2", "at postgresql+psycopg://(location not shown):"),
], ids=["password", "unencoded-at", "unencoded-slash-and-question-mark", "password-in-query", "at-in-query"])
def test_errors_never_show_the_database_password(url: str, shown: str) -> None:
    with pytest.raises(LedgerError) as raised:
        Ledger(url)  # nothing listens on port 1
    message = str(raised.value)
    assert shown in message and "alice" not in message
    assert not any(part in message for part in ("hun", "ter2", "r2@")), message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_a_plain_postgresql_url_uses_the_driver_we_ship(postgres_url: str) -> None:
    ledger = Ledger(postgres_url.replace("postgresql+psycopg://", "postgresql://"))
    assert ledger.engine.dialect.driver == "psycopg"
    assert ledger.get(ledger.record_intent(order_id="o1", payer="p", bundle_identifier="b", claim_identifier="c",
                                           urgency="standard", body=b"{}").id).order_id == "o1"
    ledger.close()

"""Batch runs in the ledger, on SQLite and on PostgreSQL: input recorded once, claims exclusive and leased."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from fhir_pa.errors import InputError
from fhir_pa.ledger.store import Ledger

ITEMS = [(f"o{n}", f'{{"n":{n}}}'.encode()) for n in range(30)]


@pytest.fixture
def ledger(ledger_url: str) -> Ledger:
    return Ledger.open(ledger_url)


def test_a_run_is_recorded_once_and_must_keep_its_input(ledger: Ledger) -> None:
    first = ledger.runs.start("r1", payer="p", source="orders.ndjson", items=ITEMS)
    again = ledger.runs.start("r1", payer="p", source="orders.ndjson", items=ITEMS)
    assert first.created and not again.created and again.orders == 30
    assert ledger.runs.counts("r1") == {"pending": 30}
    with pytest.raises(InputError, match="other orders"):
        ledger.runs.start("r1", payer="p", source="orders.ndjson", items=ITEMS[:-1])
    assert ledger.runs.body("r1", "o3") == b'{"n":3}'


def test_claims_come_in_input_order_and_are_exclusive(ledger: Ledger) -> None:
    ledger.runs.start("r1", payer="p", source="s", items=ITEMS)
    a = ledger.runs.claim("r1", "a", limit=5, lease=60)
    b = ledger.runs.claim("r1", "b", limit=5, lease=60)
    assert [i.order_id for i in a] == ["o0", "o1", "o2", "o3", "o4"]
    assert [i.order_id for i in b] == ["o5", "o6", "o7", "o8", "o9"]
    assert ledger.runs.claim("r1", "a", limit=0, lease=60) == []
    assert not ledger.runs.finish("r1", "o0", "b", status="done", outcome="approved")  # not b's to settle
    assert ledger.runs.finish("r1", "o0", "a", status="done", outcome="approved")
    assert ledger.runs.counts("r1") == {"done": 1, "claimed": 9, "pending": 20}


def test_an_expired_lease_is_taken_over_and_the_old_holder_can_no_longer_settle(ledger: Ledger) -> None:
    ledger.runs.start("r1", payer="p", source="s", items=ITEMS[:2])
    assert len(ledger.runs.claim("r1", "dead", limit=2, lease=0.2)) == 2
    assert ledger.runs.claim("r1", "live", limit=2, lease=60) == []  # still leased
    time.sleep(0.3)
    taken = ledger.runs.claim("r1", "live", limit=2, lease=60)
    assert [(i.order_id, i.previous, i.tries) for i in taken] == [("o0", "claimed", 2), ("o1", "claimed", 2)]
    assert not ledger.runs.finish("r1", "o0", "dead", status="done", outcome="approved")


def test_renewal_keeps_a_live_workers_claims(ledger: Ledger) -> None:
    ledger.runs.start("r1", payer="p", source="s", items=ITEMS[:1])
    ledger.runs.claim("r1", "a", limit=1, lease=0.3)
    time.sleep(0.15)
    assert ledger.runs.renew("r1", "a", lease=60) == 1
    time.sleep(0.25)
    assert ledger.runs.claim("r1", "b", limit=1, lease=60) == []


def test_a_restarted_worker_releases_its_old_claims_first(ledger: Ledger) -> None:
    ledger.runs.start("r1", payer="p", source="s", items=ITEMS[:3])
    ledger.runs.claim("r1", "host-1", limit=3, lease=600)
    assert ledger.runs.release("r1", "host-1") == 3
    assert [i.previous for i in ledger.runs.claim("r1", "host-1", limit=3, lease=600)] == ["pending"] * 3


def test_retry_and_waiting_orders_come_back(ledger: Ledger) -> None:
    ledger.runs.start("r1", payer="p", source="s", items=ITEMS[:2])
    ledger.runs.claim("r1", "a", limit=2, lease=60)
    ledger.runs.finish("r1", "o0", "a", status="retry", outcome="error", error_code="unavailable", retry_after=0.3)
    ledger.runs.finish("r1", "o1", "a", status="waiting", outcome="pended")
    wait = ledger.runs.next_retry_in("r1")
    assert wait is not None and 0 < wait <= 0.3
    assert [i.order_id for i in ledger.runs.claim("r1", "a", limit=5, lease=60)] == ["o1"]
    time.sleep(0.35)
    again = ledger.runs.claim("r1", "a", limit=5, lease=60)
    assert [(i.order_id, i.previous, i.tries) for i in again] == [("o0", "retry", 2)]
    assert ledger.runs.next_retry_in("r1") is None
    assert ledger.runs.open_count("r1") == 2


def test_concurrent_claimers_never_share_an_order(ledger: Ledger, ledger_url: str) -> None:
    many = [(f"c{n}", b"{}") for n in range(200)]
    ledger.runs.start("r1", payer="p", source="s", items=many)
    got: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(name: str) -> None:
        own = Ledger.open(ledger_url)  # each worker its own engine and connections, as separate processes have
        try:
            while claimed := own.runs.claim("r1", name, limit=7, lease=60):
                with lock:
                    got.update(i.order_id for i in claimed)
                for item in claimed:
                    assert own.runs.finish("r1", item.order_id, name, status="done", outcome="approved")
        finally:
            own.close()

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 200 and set(got.values()) == {1}
    assert ledger.runs.counts("r1") == {"done": 200}

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from fhir_pa.errors import LedgerError
from fhir_pa.ledger import clock
from fhir_pa.ledger.store import Ledger


def _intent(ledger: Ledger, order_id: str = "o1", urgency: str = "standard") -> str:
    return ledger.record_intent(order_id=order_id, payer="http://payer", bundle_identifier=f"sys|{order_id}",
                                claim_identifier=f"trn|{order_id}", urgency=urgency, body=b'{"a":1}').id


def test_intent_is_recorded_once_per_payer_and_order(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    first = _intent(ledger)
    again = _intent(ledger)
    assert first == again
    assert len(ledger.records()) == 1
    assert ledger.get(first).state == "prepared"
    assert ledger.get(first).request_body == b'{"a":1}'


def test_records_survive_reopening(ledger_url: str) -> None:
    first = Ledger(ledger_url)
    record_id = _intent(first)
    first.close()
    reopened = Ledger(ledger_url)
    assert reopened.get(record_id).order_id == "o1"


def test_exchange_starts_the_clock_and_keeps_bytes(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    record_id = _intent(ledger, urgency="expedited")
    started = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    ledger.record_exchange(record_id, kind="submit", url="u", body=b'{"a":1}', started_at=started,
                           delivery="not-sent", error="ConnectError")
    assert ledger.get(record_id).submitted_at is None  # nothing reached the payer yet
    ledger.record_exchange(record_id, kind="submit", url="u", body=b'{"a":1}', started_at=started,
                           delivery="sent", status_code=200, content_type="application/fhir+json",
                           response_body=b"{}")
    record = ledger.get(record_id)
    assert record.attempts == 2
    assert record.submitted_at == started
    assert record.deadline_at == started + timedelta(hours=72)
    exchanges = ledger.exchanges(record_id)
    assert [e.delivery for e in exchanges] == ["not-sent", "sent"]
    assert exchanges[1].response_body == b"{}"
    assert exchanges[0].request_sha256 == exchanges[1].request_sha256


def test_final_state_sets_decided_and_history(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    record_id = _intent(ledger)
    ledger.set_state(record_id, "sending")
    ledger.set_state(record_id, "approved", preauth_ref="PA1", claim_response_id="cr1")
    record = ledger.get(record_id)
    assert record.final and record.decided_at is not None and record.preauth_ref == "PA1"
    assert [e.state for e in ledger.history(record_id)] == ["prepared", "sending", "approved"]


def test_unknown_record(ledger_url: str) -> None:
    for ledger in (Ledger(ledger_url), Ledger("sqlite:///:memory:")):
        with pytest.raises(LedgerError, match="no request"):
            ledger.get("missing")


def test_clock_limits_and_description() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert clock.deadline(start, "standard") == start + timedelta(days=7)
    assert clock.deadline(start, "expedited") == start + timedelta(hours=72)
    assert clock.describe(timedelta(days=2, hours=3)) == "2d 3h left"
    assert clock.describe(timedelta(hours=-4)) == "overdue 4h 0m"
    assert clock.describe(timedelta(minutes=5)) == "5m left"


def test_times_come_back_as_utc_whatever_the_database_zone(ledger_url: str) -> None:
    if ledger_url.startswith("postgresql"):  # a server whose sessions default to a zone far from UTC
        engine = create_engine(ledger_url)
        with engine.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{engine.url.database}" SET TimeZone = \'Asia/Kathmandu\''))
            conn.commit()
        engine.dispose()
    ledger = Ledger(ledger_url)
    started = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    record_id = _intent(ledger)
    ledger.record_exchange(record_id, kind="submit", url="u", body=b"{}", started_at=started, delivery="sent")
    ledger.notifications.store(b"n", received_at=datetime(2026, 11, 1, 12, 0))  # naive: taken as UTC
    ledger.hooks.record(hook="order-sign", hook_instance="h", service_url=None, patient_id=None, started_at=started,
                        elapsed_ms=5, status_code=200, answered=True, problem=None, request_body=None,
                        response_body=None)
    ledger.subscriptions.save(payer="p", sending_system_id="S", endpoint="e", status="requested", token="t",
                              remote_id=None, remote_url=None, error=None, at=started)
    times = [ledger.get(record_id).submitted_at, ledger.exchanges(record_id)[0].started_at,
             ledger.notifications.all()[0].received_at, ledger.hooks.all()[0].started_at,
             ledger.subscriptions.all()[0].created_at]
    assert times == [started] * 5
    assert [t.utcoffset() if t else None for t in times] == [timedelta(0)] * 5
    assert ledger.get(record_id).deadline_at == started + timedelta(days=7)
    ledger.close()

"""Prior-auth metrics on a ledger written through the real Ledger API: states, percentiles, CMS clocks, denial
reasons, one count per case (updates and cancels join their root), and the payer and time filters."""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fhir_pa.config import Sender
from fhir_pa.ledger.store import Ledger
from fhir_pa.metrics import (
    ClockClass,
    ClockCounts,
    classify,
    denial_reasons,
    duration_stats,
    load_cases,
    metrics_as_json,
    prior_auth_metrics,
)
from fhir_pa.metrics.reasons import NO_REASON, NO_RESPONSE, UNREADABLE
from fhir_pa.pas.update import build_cancel_bundle, build_update_bundle
from tests.conftest import load_fixture
from tests.unit.metrics_ledger import Writer, hours, order, response

A = "http://payer-a.example/fhir"
B = "http://payer-b.example/fhir"
T = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
NOW = T + timedelta(days=20)
NOT_NEEDED = "Not medically necessary"


def build(ledger: Ledger) -> Writer:
    """Payer A: 8 standard and 5 expedited cases; payer B: one in 2027 and one in December 2026."""
    w = Writer(ledger)
    # s1: pended at submit, approved an hour later by a notification (advance)
    s1 = w.request("s1", payer=A, submitted=T, state="pended", answer=response("A4"))
    ledger.advance(s1.id, "approved", channel="notification", body=response("A1", preauth="PA-s1"),
                   preauth_ref="PA-s1")
    w.set_times(s1.id, decided_at=T + hours(1))
    w.request("s2", payer=A, submitted=T + hours(1), state="denied", decided=T + hours(1 + 48),
              answer=response(("A3", (("AA", NOT_NEEDED), ("BB", None)))))
    w.request("s3", payer=A, submitted=T + hours(2), state="denied", decided=T + hours(2 + 192),
              answer=response(("A3", (("AA", NOT_NEEDED),)), ("A3", (("AA", NOT_NEEDED),))))
    w.request("s4", payer=A, submitted=NOW - timedelta(days=3), state="pended")
    w.request("s5", payer=A, submitted=NOW - timedelta(days=10), state="pended")
    w.request("s6", payer=A, submitted=None)  # recorded, never sent
    w.request("s7", payer=A, submitted=T + hours(3), state="partial", decided=T + hours(3 + 96),
              answer=response("A1", ("A3", (("DD", "Not covered"),))))
    # s8: pended; a Claim Update is decided (modified) 120 h after the original reached the payer; then a cancel
    # is recorded but never sent, so it changes nothing at the payer
    s8 = w.request("s8", payer=A, submitted=T + hours(4), state="pended")
    updated = build_update_bundle(json.loads(s8.request_body), order("s8", services=[
        {"code": "72148", "service_date": "2026-12-01", "quantity": 2, "unit": "visit"}]), sender=Sender())
    update = w.intent(updated, payer=A, kind="update", prior=s8, order_id="s8#update-1")
    w.send(update, T + hours(54), response("A6"), "modified", preauth="PA-s8")
    w.set_times(update.id, decided_at=T + hours(4 + 120))
    cancel = build_cancel_bundle(json.loads(update.request_body), sender=Sender())
    w.intent(cancel, payer=A, kind="cancel", prior=ledger.get(update.id), order_id="s8#cancel")
    w.request("e1", payer=A, urgency="expedited", submitted=T + hours(5), state="approved", decided=T + hours(5 + 2),
              answer=response("A1"))
    w.request("e2", payer=A, urgency="expedited", submitted=T + hours(6), state="denied",
              decided=T + hours(6 + 80), answer=response(("A3", (("CC", "Out of network"),))))
    w.request("e3", payer=A, urgency="expedited", submitted=T + hours(7), state="modified",
              decided=T + hours(7 + 10), answer=response("A6"))
    w.request("e4", payer=A, urgency="expedited", submitted=NOW - timedelta(days=4), state="pended")
    w.request("e5", payer=A, urgency="expedited", submitted=NOW - timedelta(days=1), state="pended")
    w.request("b1", payer=B, submitted=T + hours(8), state="approved", decided=T + hours(8.5), answer=response("A1"))
    w.request("w1", payer=B, submitted=datetime(2026, 12, 15, tzinfo=UTC), state="approved",
              decided=datetime(2026, 12, 16, tzinfo=UTC), answer=response("A1"))
    return w


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    store = Ledger.at_path(tmp_path / "ledger.sqlite")
    build(store)
    return store


def h(n: float) -> float:
    return n * 3600


def test_every_case_is_counted_once_with_its_newest_state(ledger: Ledger) -> None:
    assert len(ledger.records()) == 17  # 15 originals, an update and a cancel
    m = prior_auth_metrics(ledger, payer=A, now=NOW)
    assert m.cases == 13
    assert dict(m.by_state) == {"pended": 4, "denied": 3, "approved": 2, "modified": 2, "partial": 1,
                                "prepared": 1}
    assert m.approvals == 5 and m.denials == 3 and m.approval_rate == 5 / 8
    assert (m.urgency("standard").cases, m.urgency("expedited").cases) == (8, 5)
    s8 = next(c for c in load_cases(ledger) if c.request_count == 3)
    assert (s8.state, s8.preauth_ref, s8.decided_at) == ("modified", "PA-s8", T + hours(4 + 120))


def test_decision_time_percentiles_by_urgency(ledger: Ledger) -> None:
    m = prior_auth_metrics(ledger, payer=A, now=NOW)
    standard = m.urgency("standard").decision_time  # 1, 48, 96, 120, 192 h
    assert (standard.count, standard.p50, standard.p90, standard.p95, standard.p99, standard.max, standard.mean) == (
        5, h(96), 587_520, 639_360, 680_832, h(192), 329_040)
    expedited = m.urgency("expedited").decision_time  # 2, 10, 80 h
    assert (expedited.count, expedited.p50, expedited.p90, expedited.p95, expedited.p99, expedited.max,
            expedited.mean) == (3, h(10), h(66), h(73), 282_960, h(80), 110_400)
    everything = m.decision_time  # 1, 2, 10, 48, 80, 96, 120, 192 h
    assert (everything.count, everything.p50, everything.p90, everything.p95, everything.p99, everything.max,
            everything.mean) == (8, h(64), 509_760, 600_480, 673_056, h(192), 247_050)


def test_percentiles_are_the_stdlib_inclusive_quantiles() -> None:
    data = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    cuts = statistics.quantiles(sorted(data), n=100, method="inclusive")
    stats = duration_stats(data)
    assert (stats.p50, stats.p90, stats.p95, stats.p99) == (cuts[49], cuts[89], cuts[94], cuts[98])
    assert (stats.p50, stats.max, stats.mean) == (4.0, 9.0, 27 / 6)
    one = duration_stats([42.0])
    assert (one.count, one.p50, one.p99, one.max, one.mean) == (1, 42.0, 42.0, 42.0, 42.0)
    assert duration_stats([]).p50 is None and duration_stats([]).count == 0


def test_cms_clock_classes(ledger: Ledger) -> None:
    m = prior_auth_metrics(ledger, payer=A, now=NOW)
    assert m.urgency("standard").clock == ClockCounts(on_time=4, late=1, open=1, overdue=1, not_started=1)
    assert m.urgency("expedited").clock == ClockCounts(on_time=2, late=1, open=1, overdue=1, not_started=0)
    assert m.clock == ClockCounts(on_time=6, late=2, open=2, overdue=2, not_started=1)
    by_id = {c.bundle_identifier: c for c in load_cases(ledger)}
    assert len(by_id) == 15
    e4 = next(c for c in by_id.values() if c.urgency == "expedited" and c.submitted_at == NOW - timedelta(days=4))
    assert classify(e4, NOW) == ClockClass.OVERDUE
    assert classify(e4, NOW - timedelta(days=2)) == ClockClass.OPEN  # 72 h had not run out yet


def test_a_decision_exactly_at_the_deadline_is_on_time(tmp_path: Path) -> None:
    ledger = Ledger.at_path(tmp_path / "edge.sqlite")
    w = Writer(ledger)
    w.request("x1", payer=A, urgency="expedited", submitted=T, state="approved", decided=T + hours(72),
              answer=response("A1"))
    w.request("x2", payer=A, urgency="expedited", submitted=T, state="approved",
              decided=T + hours(72) + timedelta(seconds=1), answer=response("A1"))
    clock = prior_auth_metrics(ledger, now=NOW).urgency("expedited").clock
    assert (clock.on_time, clock.late) == (1, 1)


def test_denial_reasons_count_each_denied_case_once(ledger: Ledger) -> None:
    m = prior_auth_metrics(ledger, payer=A, now=NOW)
    assert [(r.reason, r.count) for r in m.denial_reasons] == [
        (f"AA: {NOT_NEEDED}", 2), ("BB", 1), ("CC: Out of network", 1)]  # DD is on a partial approval


def test_denial_reasons_when_there_is_no_readable_reason() -> None:
    assert denial_reasons(None) == (NO_RESPONSE,)
    assert denial_reasons(b"<html>") == (UNREADABLE,)
    assert denial_reasons(response("A3")) == (NO_REASON,)


def test_denial_from_the_ig_rejection_example(tmp_path: Path) -> None:
    denied = json.dumps(load_fixture("pas", "Bundle-RejectionResponseBundleExample.json")).encode()
    pended = json.dumps(load_fixture("pas", "Bundle-ReferralPendingAuthorizationResponseBundleExample.json")).encode()
    ledger = Ledger.at_path(tmp_path / "ig.sqlite")
    w = Writer(ledger)
    record = w.request("ig", payer=A, submitted=T, state="pended", answer=pended)
    ledger.advance(record.id, "denied", channel="poll-read", body=denied)
    w.set_times(record.id, decided_at=T + hours(30))
    m = prior_auth_metrics(ledger, now=NOW)
    assert dict(m.by_state) == {"denied": 1}
    assert [(r.reason, r.count) for r in m.denial_reasons] == [(NO_REASON, 1)]  # the IG example gives none
    assert m.decision_time.p50 == h(30)


def test_payer_filter_ignores_a_trailing_slash(ledger: Ledger) -> None:
    m = prior_auth_metrics(ledger, payer=f"{B}/", now=NOW)
    assert m.cases == 2 and dict(m.by_state) == {"approved": 2}
    assert m.urgency("standard").decision_time.p50 == (h(0.5) + h(24)) / 2
    assert prior_auth_metrics(ledger, payer="http://nobody.example/fhir", now=NOW).cases == 0


def test_time_window_selects_by_when_the_payer_received_the_request(ledger: Ledger) -> None:
    year = prior_auth_metrics(ledger, since=datetime(2027, 1, 1, tzinfo=UTC), until=datetime(2028, 1, 1, tzinfo=UTC),
                              now=NOW)
    assert year.cases == 13  # 12 of payer A (s6 was never sent) and b1; w1 is from 2026
    assert "prepared" not in year.by_state
    assert year.clock.not_started == 0
    before = prior_auth_metrics(ledger, until=datetime(2027, 1, 1, tzinfo=UTC), now=NOW)
    assert before.cases == 1 and before.payer is None
    assert prior_auth_metrics(ledger, since=T, until=T + hours(1), now=NOW).cases == 1  # s1; s2 starts at T+1h
    assert prior_auth_metrics(ledger, now=NOW).cases == 15


def test_json_view(ledger: Ledger) -> None:
    view = metrics_as_json(prior_auth_metrics(ledger, payer=A, since=datetime(2027, 1, 1), now=NOW))
    json.dumps(view)  # JSON types only
    assert view["filters"] == {"payer": A, "since": "2027-01-01T00:00:00+00:00", "until": None}
    assert view["cases"] == 12 and view["approvals"] == 5 and view["denials"] == 3
    assert view["denial_reasons"] == {f"AA: {NOT_NEEDED}": 2, "BB": 1, "CC: Out of network": 1}
    assert view["percentile_method"] == "statistics.quantiles(n=100, method='inclusive')"
    assert view["decision_time_seconds"]["expedited"] == {
        "count": 3, "p50": h(10), "p90": h(66), "p95": h(73), "p99": 282_960, "max": h(80), "mean": 110_400}
    assert view["cms_clock"]["all"] == {"on-time": 6, "late": 2, "open": 2, "overdue": 2, "not-started": 0}
    assert view["cases_by_urgency"] == {"standard": 7, "expedited": 5}


def test_an_empty_ledger(tmp_path: Path) -> None:
    m = prior_auth_metrics(Ledger.at_path(tmp_path / "empty.sqlite"), now=NOW)
    assert m.cases == 0 and m.approval_rate is None and m.denial_reasons == ()
    assert metrics_as_json(m)["decision_time_seconds"]["all"]["p50"] is None

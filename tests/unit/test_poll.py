"""One poll of a pended request (respx stands in for the payer; the ledger is real SQLite)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from fhir_pa.config import PayerConfig, PollSettings
from fhir_pa.errors import PayerRejected
from fhir_pa.fhir.flow import run_sync
from fhir_pa.fhir.ratelimit import RateLimiter
from fhir_pa.ledger.store import APPLIED, Ledger, LedgerRecord
from fhir_pa.pas.poll import channel_for, next_poll_delay, poll_once
from tests.conftest import load_fixture

BASE = "https://payer.test/fhir"


def _claim_response(name: str) -> dict[str, Any]:
    bundle = load_fixture("pas", name)
    resource: dict[str, Any] = next(e["resource"] for e in bundle["entry"]
                                    if e["resource"]["resourceType"] == "ClaimResponse")
    return resource


def _payer(mode: str = "auto") -> PayerConfig:
    return PayerConfig(fhir_base_url=BASE, client_id="c", key_path=Path("unused"),
                       poll=PollSettings(mode=mode, rate_limit=1000))  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.at_path(tmp_path / "ledger.sqlite")


def _pended(ledger: Ledger, claim_response_id: str | None = "cr-1") -> LedgerRecord:
    record = ledger.record_intent(order_id="o1", payer=BASE, bundle_identifier="sys|b1",
                                  claim_identifier="urn:trnorg:x|c1", urgency="standard", body=b"{}")
    ledger.record_exchange(record.id, kind="submit", url="u", body=b"{}", started_at=datetime.now(UTC),
                           delivery="sent", status_code=200, response_body=b"{}")
    ledger.set_state(record.id, "pended", claim_response_id=claim_response_id)
    return ledger.get(record.id)


def test_backoff_grows_is_capped_and_never_undercuts_retry_after() -> None:
    settings = PollSettings(first_delay=10, max_delay=100, multiplier=2)
    rng = random.Random(7)
    delays = [next_poll_delay(settings, n, rng=rng) for n in range(8)]
    assert 8 <= delays[0] <= 12 and 16 <= delays[1] <= 24
    assert all(d <= 100 for d in delays) and delays[-1] >= 80
    assert next_poll_delay(settings, 0, retry_after_s=500, rng=rng) == 500


def test_auto_mode_reads_when_the_claim_response_id_is_known(ledger: Ledger) -> None:
    assert channel_for(_payer(), _pended(ledger)) == "poll-read"
    assert channel_for(_payer("search"), _pended(ledger)) == "poll-search"


@respx.mock
def test_read_applies_a_final_answer_and_keeps_the_bytes(ledger: Ledger) -> None:
    approved = _claim_response("Bundle-ReferralAuthorizationResponseBundleExample.json")
    respx.get(f"{BASE}/ClaimResponse/cr-1").mock(return_value=httpx.Response(200, json=approved))
    record = _pended(ledger)
    with httpx.Client() as http:
        outcome = run_sync(poll_once(_payer(), ledger, record, limiter=RateLimiter()), http, None)
    assert outcome.verdict == APPLIED and outcome.decision is not None
    after = ledger.get(record.id)
    assert after.state == outcome.decision.status.value != "pended"
    assert after.decision_channel == "poll-read"
    assert json.loads(ledger.exchanges(record.id)[-1].response_body or b"") == approved


@respx.mock
def test_search_by_request_identifier(ledger: Ledger) -> None:
    approved = _claim_response("Bundle-ReferralAuthorizationResponseBundleExample.json")
    route = respx.get(f"{BASE}/ClaimResponse").mock(return_value=httpx.Response(
        200, json={"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": [{"resource": approved}]}))
    record = _pended(ledger)
    with httpx.Client() as http:
        outcome = run_sync(poll_once(_payer("search"), ledger, record, limiter=RateLimiter()), http, None)
    assert route.calls.last.request.url.params["request.identifier"] == "urn:trnorg:x|c1"
    assert outcome.verdict == APPLIED


@respx.mock
def test_empty_search_and_404_leave_the_request_pended(ledger: Ledger) -> None:
    respx.get(f"{BASE}/ClaimResponse").mock(return_value=httpx.Response(
        200, json={"resourceType": "Bundle", "type": "searchset", "total": 0}))
    respx.get(f"{BASE}/ClaimResponse/cr-1").mock(return_value=httpx.Response(404))
    record = _pended(ledger)
    with httpx.Client() as http:
        for mode in ("search", "read"):
            outcome = run_sync(poll_once(_payer(mode), ledger, record, limiter=RateLimiter()), http, None)
            assert outcome.decision is None and outcome.verdict is None
    assert ledger.get(record.id).state == "pended"
    assert len(ledger.exchanges(record.id)) == 3, "every answer is kept, even the empty ones"


@respx.mock
def test_busy_payer_gives_retry_after_and_a_refusal_raises(ledger: Ledger) -> None:
    route = respx.get(f"{BASE}/ClaimResponse/cr-1")
    route.mock(return_value=httpx.Response(429, headers={"Retry-After": "42"}))
    record = _pended(ledger)
    with httpx.Client() as http:
        outcome = run_sync(poll_once(_payer(), ledger, record, limiter=RateLimiter()), http, None)
        assert outcome.retry_after == 42 and outcome.decision is None
        route.mock(return_value=httpx.Response(403, json={
            "resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden"}]}))
        with pytest.raises(PayerRejected):
            run_sync(poll_once(_payer(), ledger, record, limiter=RateLimiter()), http, None)


@respx.mock
def test_connection_failure_is_recorded_not_raised(ledger: Ledger) -> None:
    respx.get(f"{BASE}/ClaimResponse/cr-1").mock(side_effect=httpx.ConnectError("refused"))
    record = _pended(ledger)
    with httpx.Client() as http:
        outcome = run_sync(poll_once(_payer(), ledger, record, limiter=RateLimiter()), http, None)
    assert outcome.decision is None and "ConnectError" in outcome.detail
    assert ledger.exchanges(record.id)[-1].delivery == "not-sent"


def test_rate_limiter_spaces_calls_to_one_payer() -> None:
    limiter = RateLimiter()
    waits = [limiter.reserve("p", 2.0) for _ in range(3)]
    assert waits[0] == 0 and waits[1] == pytest.approx(0.5, abs=0.05) and waits[2] == pytest.approx(1.0, abs=0.05)
    assert limiter.reserve("other", 2.0) == 0

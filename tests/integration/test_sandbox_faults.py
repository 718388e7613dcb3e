"""Exactly-once under a misbehaving payer: lost answers, replaced answers, expiring tokens.

The sandbox's answer-fault knobs act *after* the payer did its work (``slow_rate`` holds the answer back past
the client's timeout, ``error_after_rate`` replaces it with a bare 500), and its token knobs end the client's
token between calls. Through all of it the real client (:class:`fhir_pa.pas.submit.PasClient`) must get one
decision per order, the payer must decide every request Bundle identifier exactly once, and every resend must
be the same bytes, answered from the payer's store as a duplicate.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_pa.config import PayerConfig
from fhir_pa.fhir.retry import RetryPolicy
from fhir_pa.ledger.store import Ledger
from fhir_pa.pas.decision_types import DecisionStatus
from fhir_pa.pas.order import order_from_data
from fhir_pa.pas.submit import PasClient, SubmitResult
from fhir_pa_sandbox.server import SandboxServer
from tests.conftest import order_data
from tests.integration.conftest import set_faults, stats
from tests.integration.pas_bundles import bundle_key, request_bundle
from tests.integration.sandbox_helpers import get_token, new_client, submit

pytestmark = pytest.mark.integration

#: Shorter than ``SLOW_MS``, far longer than a normal loopback answer: a slowed answer is always given up on.
CLIENT_TIMEOUT = 0.5
SLOW_MS = 1500
#: Enough attempts that, with the seeds below, every order gets an answer (the draws are repeatable).
FAST_RETRY = RetryPolicy(attempts=8, base_delay=0.01, max_delay=0.05)
ORDERS = 20
#: An approved code and a denied one (``data/rules.json``), alternated so decisions are checked, not assumed.
CODES = {"72148": DecisionStatus.APPROVED, "97110": DecisionStatus.DENIED}


@dataclasses.dataclass(frozen=True)
class Sent:
    """One order as the client and the payer saw it."""

    result: SubmitResult
    code: str
    bundle_identifier: str
    #: The client's exchanges for it: (HTTP status or None for a transport failure, sha256 of the bytes sent).
    exchanges: list[tuple[int | None, str]]
    ledger_state: str

    @property
    def reached_handler(self) -> int:
        """Copies the payer's ``$submit`` handler saw: all but those ``error_rate`` refused before processing."""
        return sum(status != 503 for status, _ in self.exchanges)


@pytest.fixture
def client(payer: PayerConfig, tmp_path: Path) -> Iterator[PasClient]:
    quick = dataclasses.replace(payer, timeout=CLIENT_TIMEOUT, retry=FAST_RETRY)
    ledger = Ledger.at_path(tmp_path / "ledger.sqlite")
    with PasClient(quick, ledger=ledger) as pas:
        yield pas
    ledger.close()


def _submit_all(client: PasClient, tag: str, count: int = ORDERS, first: int = 0) -> list[Sent]:
    codes = list(CODES)
    sent: list[Sent] = []
    for n in range(first, first + count):
        code = codes[n % len(codes)]
        services = [{"code": code, "service_date": "2026-12-01", "quantity": 1, "unit": "visit"}]
        result = client.submit(order_from_data(order_data(order_id=f"{tag}-{n}", services=services)))
        record = client.ledger.get(result.record_id)
        exchanges = [(x.status_code, x.request_sha256) for x in client.ledger.exchanges(record.id)]
        sent.append(Sent(result, code, record.bundle_identifier, exchanges, record.state))
    return sent


def _delta(before: dict[str, Any], after: dict[str, Any], name: str) -> int:
    return int(after[name]) - int(before[name])


def _assert_exactly_once(sandbox: SandboxServer, sent: list[Sent]) -> dict[str, dict[str, int]]:
    """Every order decided as its rule says, by the payer's one decision; every resend the same bytes, answered
    as a duplicate. Returns the payer's per-identifier counters for these orders."""
    by_identifier: dict[str, dict[str, int]] = stats(sandbox)["by_identifier"]  # type: ignore[assignment]
    assert len({s.bundle_identifier for s in sent}) == len(sent)
    for s in sent:
        assert s.result.sent and s.result.decision.status is CODES[s.code], s.result.order_id
        counts = by_identifier[s.bundle_identifier]
        assert counts["decided"] == 1, (s.result.order_id, counts)
        assert counts["rejected"] == 0
        # every copy that reached the handler was one the client sent, and all but the first were duplicates
        assert counts["received"] == s.reached_handler, (s.result.order_id, counts, s.exchanges)
        assert counts["duplicates"] == counts["received"] - 1
        assert len({sha for _, sha in s.exchanges}) == 1, "a resend must be the very same bytes"
        stored = sandbox.state.store.find(s.bundle_identifier)
        assert stored is not None and s.result.decision.claim_response_id == stored.claim_response_id
        assert s.ledger_state == s.result.decision.status.value
    return {s.bundle_identifier: by_identifier[s.bundle_identifier] for s in sent}


# --- the real client under each knob ----------------------------------------------------------------------------


def test_lost_answers_are_resent_and_answered_as_duplicates(sandbox: SandboxServer, client: PasClient) -> None:
    before = stats(sandbox)
    set_faults(sandbox, slow_rate=0.1, slow_ms=SLOW_MS, seed=7)
    sent = _submit_all(client, "slow")
    after = stats(sandbox)
    counts = _assert_exactly_once(sandbox, sent)
    timeouts = sum(status is None for s in sent for status, _ in s.exchanges)
    duplicates = sum(c["duplicates"] for c in counts.values())
    assert timeouts >= 1 and duplicates == timeouts  # each given-up answer was a decision already made
    # every slowed answer was given up on (slowed duplicates too); none was lost any other way
    assert _delta(before, after, "answers_delayed") == timeouts
    assert _delta(before, after, "decisions") == ORDERS
    assert _delta(before, after, "answers_replaced") == 0


def test_replaced_answers_are_resent_and_answered_as_duplicates(sandbox: SandboxServer,
                                                                client: PasClient) -> None:
    before = stats(sandbox)
    set_faults(sandbox, error_after_rate=0.3, seed=5)
    sent = _submit_all(client, "error-after")
    after = stats(sandbox)
    counts = _assert_exactly_once(sandbox, sent)
    replaced = sum(status == 500 for s in sent for status, _ in s.exchanges)
    assert replaced >= 1 and sum(c["duplicates"] for c in counts.values()) == replaced
    assert _delta(before, after, "answers_replaced") == replaced
    assert _delta(before, after, "faults_injected") == replaced
    assert _delta(before, after, "decisions") == ORDERS


def test_expired_tokens_are_replaced_and_never_cause_a_second_decision(sandbox: SandboxServer,
                                                                       client: PasClient) -> None:
    before = stats(sandbox)
    first = _submit_all(client, "expire", count=ORDERS // 2)
    set_faults(sandbox, expire_tokens=True)
    second = _submit_all(client, "expire", count=ORDERS - ORDERS // 2, first=ORDERS // 2)
    after = stats(sandbox)
    counts = _assert_exactly_once(sandbox, first + second)
    assert all(c["received"] == 1 and c["duplicates"] == 0 for c in counts.values())  # a 401 is not a receipt
    assert _delta(before, after, "tokens_issued") == 2  # the first token, and one after the expiry
    assert _delta(before, after, "token_expiries") == 1 and _delta(before, after, "tokens_expired") >= 1


@pytest.mark.parametrize("every", [1, 3])
def test_tokens_expiring_mid_run_are_fetched_again(every: int, sandbox: SandboxServer,
                                                   client: PasClient) -> None:
    before = stats(sandbox)
    set_faults(sandbox, token_expiry_every=every)
    sent = _submit_all(client, f"expiry-every-{every}")
    after = stats(sandbox)
    counts = _assert_exactly_once(sandbox, sent)
    assert all(c["received"] == 1 for c in counts.values())
    assert _delta(before, after, "token_expiries") == ORDERS // every
    # one token to start; one more after each expiry that another call followed
    assert _delta(before, after, "tokens_issued") == 1 + (ORDERS - 1) // every
    assert _delta(before, after, "token_requests_refused") == 0


def test_every_knob_at_once_still_decides_each_request_exactly_once(sandbox: SandboxServer,
                                                                    client: PasClient) -> None:
    before = stats(sandbox)
    set_faults(sandbox, error_rate=0.1, slow_rate=0.1, slow_ms=SLOW_MS, error_after_rate=0.1,
               token_expiry_every=4, seed=11)
    sent = _submit_all(client, "all-knobs")
    after = stats(sandbox)
    counts = _assert_exactly_once(sandbox, sent)
    lost = sum(status is None or status == 500 for s in sent for status, _ in s.exchanges)
    assert lost >= 1 and sum(c["duplicates"] for c in counts.values()) == lost
    assert _delta(before, after, "decisions") == ORDERS
    assert _delta(before, after, "faults_injected") >= lost + sum(status == 503 for s in sent
                                                                 for status, _ in s.exchanges)
    expiries = _delta(before, after, "token_expiries")
    assert expiries >= 1
    # one token to start and one after each expiry, but for an expiry after the very last call
    assert _delta(before, after, "tokens_issued") - expiries in (0, 1)


# --- the knobs themselves, over raw HTTP ----------------------------------------------------------------------


@pytest.fixture
def token(sandbox: SandboxServer, client_key: Any) -> str:
    return get_token(sandbox, client_key, new_client(sandbox, client_key))


def _decided(sandbox: SandboxServer, bundle: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = stats(sandbox)["by_identifier"][bundle_key(bundle)]  # type: ignore[index]
    return counts


def test_a_slowed_answer_is_stored_before_it_is_sent(sandbox: SandboxServer, token: str) -> None:
    bundle = request_bundle()
    set_faults(sandbox, slow_rate=1, slow_ms=SLOW_MS)
    content = json.dumps(bundle).encode()
    headers = {"Content-Type": "application/fhir+json", "Authorization": f"Bearer {token}"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{sandbox.fhir_base}/Claim/$submit", content=content, headers=headers, timeout=0.3)
    assert _decided(sandbox, bundle) == {"received": 1, "decided": 1, "duplicates": 0, "rejected": 0}
    set_faults(sandbox, slow_rate=0)
    resent = submit(sandbox, token, bundle)
    assert resent.status_code == 200 and resent.json()["resourceType"] == "Bundle"
    assert _decided(sandbox, bundle) == {"received": 2, "decided": 1, "duplicates": 1, "rejected": 0}


def test_a_slowed_answer_arrives_whole_after_slow_ms(sandbox: SandboxServer, token: str) -> None:
    set_faults(sandbox, slow_rate=1, slow_ms=300)
    bundle = request_bundle()
    answer = submit(sandbox, token, bundle)
    assert answer.status_code == 200 and answer.elapsed.total_seconds() >= 0.3
    assert answer.json()["resourceType"] == "Bundle"


def test_a_replaced_answer_is_a_bare_500_after_the_payer_acted(sandbox: SandboxServer, token: str) -> None:
    bundle = request_bundle()
    before = stats(sandbox)
    set_faults(sandbox, error_after_rate=1)
    replaced = submit(sandbox, token, bundle)
    assert replaced.status_code == 500 and replaced.content == b""
    assert _decided(sandbox, bundle)["decided"] == 1
    claim_response_id = sandbox.state.store.find(bundle_key(bundle)).claim_response_id  # type: ignore[union-attr]
    # other FHIR API calls are replaced too
    read = httpx.get(f"{sandbox.fhir_base}/ClaimResponse/{claim_response_id}",
                     headers={"Authorization": f"Bearer {token}"})
    assert read.status_code == 500 and read.content == b""
    set_faults(sandbox, reset=True)
    resent = submit(sandbox, token, bundle)
    assert resent.status_code == 200
    assert _decided(sandbox, bundle) == {"received": 2, "decided": 1, "duplicates": 1, "rejected": 0}
    after = stats(sandbox)
    assert _delta(before, after, "answers_replaced") == 2 and _delta(before, after, "faults_injected") == 2


@pytest.mark.parametrize("knob", [{"slow_rate": 1, "slow_ms": 2000}, {"error_after_rate": 1}])
def test_answer_faults_spare_refused_calls_discovery_and_the_token_endpoint(
        knob: dict[str, object], sandbox: SandboxServer, client_key: Any) -> None:
    before = stats(sandbox)
    set_faults(sandbox, **knob)
    assert submit(sandbox, None, request_bundle()).status_code == 401  # no token: refused, not processed
    for path in ("/.well-known/smart-configuration", "/metadata"):
        assert httpx.get(f"{sandbox.fhir_base}{path}", timeout=1.0).status_code == 200
    get_token(sandbox, client_key, new_client(sandbox, client_key))  # would time out if slowed
    after = stats(sandbox)
    assert _delta(before, after, "faults_injected") == 0


def test_expire_tokens_ends_every_token_issued_so_far(sandbox: SandboxServer, client_key: Any) -> None:
    client_id = new_client(sandbox, client_key)
    old, other = get_token(sandbox, client_key, client_id), get_token(sandbox, client_key, client_id)
    assert submit(sandbox, old, request_bundle()).status_code == 200
    before = stats(sandbox)
    set_faults(sandbox, expire_tokens=True)
    for token in (old, other):
        refused = submit(sandbox, token, request_bundle())
        assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]
        assert "expired" in refused.json()["issue"][0]["diagnostics"]
    fresh = get_token(sandbox, client_key, client_id)
    assert submit(sandbox, fresh, request_bundle()).status_code == 200
    after = stats(sandbox)
    assert _delta(before, after, "token_expiries") == 1 and _delta(before, after, "tokens_expired") >= 2
    assert "expire_tokens" not in httpx.get(f"{sandbox.base_url}/_sandbox/faults").json()  # an action, not a state


def test_token_expiry_every_ends_tokens_after_the_nth_authenticated_call(sandbox: SandboxServer,
                                                                        token: str) -> None:
    set_faults(sandbox, token_expiry_every=2)
    assert submit(sandbox, None, request_bundle()).status_code == 401  # not authenticated: not counted
    assert submit(sandbox, token, request_bundle()).status_code == 200
    assert submit(sandbox, token, request_bundle()).status_code == 200  # the 2nd goes on, then tokens end
    assert submit(sandbox, token, request_bundle()).status_code == 401


@pytest.mark.parametrize("command", [
    {"slow_rate": 1.5}, {"slow_ms": -1}, {"error_after_rate": "0.1"}, {"expire_tokens": "yes"},
    {"token_expiry_every": -2},
])
def test_bad_new_fault_commands_are_refused_over_http(command: dict[str, object], sandbox: SandboxServer) -> None:
    response = httpx.post(f"{sandbox.base_url}/_sandbox/faults", json=command)
    assert response.status_code == 400 and next(iter(command)) in response.json()["error"]
    knobs = httpx.get(f"{sandbox.base_url}/_sandbox/faults").json()
    assert (knobs["slow_rate"], knobs["error_after_rate"], knobs["token_expiry_every"]) == (0.0, 0.0, 0)


def test_reset_turns_every_new_knob_off(sandbox: SandboxServer) -> None:
    set_faults(sandbox, slow_rate=0.5, slow_ms=100, error_after_rate=0.5, token_expiry_every=5)
    set_faults(sandbox, reset=True)
    knobs = httpx.get(f"{sandbox.base_url}/_sandbox/faults").json()
    assert (knobs["slow_rate"], knobs["slow_ms"], knobs["error_after_rate"], knobs["token_expiry_every"]) == \
        (0.0, 3000, 0.0, 0)

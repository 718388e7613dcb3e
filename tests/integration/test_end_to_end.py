"""The PAS spine over a real loopback port: token → $submit → decision → ledger."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from fhir_pa.auth.smart import SmartBackendAuth
from fhir_pa.config import PayerConfig
from fhir_pa.errors import InvalidResponse, PayerRejected
from fhir_pa.ledger.store import Ledger
from fhir_pa.pas.submit import AsyncPasClient, PasClient, make_auth
from fhir_pa_sandbox.demo_orders import CASES, demo_order
from fhir_pa_sandbox.server import SandboxServer
from tests.integration.conftest import set_faults, stats

pytestmark = pytest.mark.integration


def _by_identifier(sandbox: SandboxServer, identifier: str) -> dict[str, int]:
    table = stats(sandbox)["by_identifier"]
    assert isinstance(table, dict)
    counts: dict[str, int] = table[identifier]
    return counts


@pytest.mark.parametrize("case", list(CASES))
def test_token_submit_decision_ledger(case: str, sandbox: SandboxServer, payer: PayerConfig,
                                      tmp_path: Path) -> None:
    ledger = Ledger.at_path(tmp_path / "ledger.sqlite")
    order = demo_order(case, order_id=f"e2e-{case}")
    with PasClient(payer, ledger=ledger) as client:
        result = client.submit(order)
    expected = CASES[case][2]
    assert result.decision.status.value == expected
    record = ledger.get(result.record_id)
    assert record.state == expected
    assert record.submitted_at is not None and record.deadline_at is not None
    assert [i.sequence for i in result.decision.items] == [1]
    if expected == "approved":
        assert result.decision.items[0].auth_number and record.preauth_ref
    if expected == "modified":
        assert result.decision.items[0].authorized, "A6 must come with the payer's authorized details"
    # the sandbox decided exactly one request with the identifier the ledger holds
    counts = _by_identifier(sandbox, record.bundle_identifier)
    assert counts["decided"] == 1
    # the ledger kept the exact bytes both ways
    exchange = ledger.exchanges(record.id)[-1]
    assert exchange.request_sha256 == hashlib.sha256(record.request_body).hexdigest()
    assert json.loads(exchange.response_body or b"")["resourceType"] == "Bundle"


def test_5xx_retries_reach_one_decision(sandbox: SandboxServer, payer: PayerConfig, tmp_path: Path) -> None:
    set_faults(sandbox, fail_next=2, status=503)
    ledger = Ledger.at_path(tmp_path / "ledger.sqlite")
    with PasClient(payer, ledger=ledger) as client:
        result = client.submit(demo_order("approved", order_id="retry-1"))
    record = ledger.get(result.record_id)
    assert result.decision.status.value == "approved"
    assert [e.status_code for e in ledger.exchanges(record.id)] == [503, 503, 200]
    assert _by_identifier(sandbox, record.bundle_identifier)["decided"] == 1


def test_lost_answer_resend_is_a_duplicate_not_a_second_request(sandbox: SandboxServer, payer: PayerConfig,
                                                                  tmp_path: Path) -> None:
    ledger = Ledger.at_path(tmp_path / "ledger.sqlite")
    with PasClient(payer, ledger=ledger) as client:
        first = client.submit(demo_order("pended", order_id="lost-1"))
        # as if the process died after sending, before the answer was stored
        ledger.set_state(first.record_id, "sending")
        again = client.submit(demo_order("pended", order_id="lost-1"))
    assert again.sent and again.record_id == first.record_id
    record = ledger.get(first.record_id)
    counts = _by_identifier(sandbox, record.bundle_identifier)
    assert counts["received"] == 2 and counts["decided"] == 1 and counts["duplicates"] == 1
    assert again.decision.status == first.decision.status


def test_payer_answering_garbage_is_a_typed_error_and_kept(sandbox: SandboxServer, payer: PayerConfig,
                                                           tmp_path: Path) -> None:
    set_faults(sandbox, garbage_next=1, garbage="html")
    ledger = Ledger.at_path(tmp_path / "ledger.sqlite")
    with PasClient(payer, ledger=ledger) as client, pytest.raises(InvalidResponse):
        client.submit(demo_order("approved", order_id="garbage-1"))
    record = ledger.records()[0]
    assert record.state == "invalid-response"
    assert (ledger.exchanges(record.id)[0].response_body or b"").lstrip().startswith(b"<")


def test_sandbox_validation_error_is_a_rejection_with_paths(sandbox: SandboxServer, payer: PayerConfig,
                                                            tmp_path: Path) -> None:
    ledger = Ledger.at_path(tmp_path / "ledger.sqlite")
    order = demo_order("approved", order_id="bad-1")
    # skip our own checks to see the payer's: a Bundle whose Claim is not first
    with PasClient(payer, ledger=ledger, check=False) as client:
        record = client._core.prepare(order, check=False)
        body = json.loads(record.request_body)
        body["entry"].append(body["entry"].pop(0))
        raw = json.dumps(body).encode()
        with ledger._tx() as conn:  # test-only surgery on the stored bytes
            from fhir_pa.ledger.schema import requests

            conn.execute(requests.update().where(requests.c.id == record.id).values(request_body=raw))
        with pytest.raises(PayerRejected) as err:
            client.submit(order)
    assert err.value.status == 400
    assert err.value.outcome is not None and err.value.issues
    assert any("entry[0]" in issue.path for issue in err.value.issues)


async def test_async_concurrent_submissions_share_one_token(sandbox: SandboxServer, payer: PayerConfig,
                                                           tmp_path: Path) -> None:
    ledger = Ledger.at_path(tmp_path / "ledger.sqlite")
    auth = make_auth(payer)
    assert isinstance(auth, SmartBackendAuth)
    async with AsyncPasClient(payer, ledger=ledger, auth=auth) as client:
        results = await asyncio.gather(*(client.submit(demo_order("approved", order_id=f"async-{i}", index=i))
                                         for i in range(12)))
    assert {r.decision.status.value for r in results} == {"approved"}
    assert len({r.record_id for r in results}) == 12
    assert auth.token_requests == 1

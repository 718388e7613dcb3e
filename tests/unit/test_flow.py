"""The sans-I/O flow runners and the shared rate limiter."""

from __future__ import annotations

import httpx
import pytest
import respx

from fhir_pa.fhir.flow import Call, Flow, Wait, call, run_async, run_sync
from fhir_pa.fhir.ratelimit import RateLimiter


def _flow() -> Flow[list[str]]:
    seen: list[str] = []
    yield Wait(0.25)
    try:
        yield Call(httpx.Request("GET", "http://payer.test/down"))
    except httpx.ConnectError:
        seen.append("connect-error")
    response = yield from call(httpx.Request("GET", "http://payer.test/up"))
    seen.append(f"{response.status_code}:{response.text}")
    return seen


@respx.mock
def test_sync_runner_sends_sleeps_and_throws_transport_errors() -> None:
    respx.get("http://payer.test/down").mock(side_effect=httpx.ConnectError("refused"))
    respx.get("http://payer.test/up").mock(return_value=httpx.Response(200, text="hi"))
    slept: list[float] = []
    with httpx.Client() as http:
        assert run_sync(_flow(), http, None, sleep=slept.append) == ["connect-error", "200:hi"]
    assert slept == [0.25]


@respx.mock
async def test_async_runner_gives_the_same_result() -> None:
    respx.get("http://payer.test/down").mock(side_effect=httpx.ConnectError("refused"))
    respx.get("http://payer.test/up").mock(return_value=httpx.Response(201, text="ok"))
    async with httpx.AsyncClient() as http:
        flow = _flow()
        first = next(flow)
        assert first == Wait(0.25)
        flow.close()
        assert await run_async(_flow(), http, None) == ["connect-error", "201:ok"]


def test_rate_limiter_spaces_calls_per_key() -> None:
    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert limiter.reserve("a", 2.0) == 0.0
    assert limiter.reserve("a", 2.0) == pytest.approx(0.5)
    assert limiter.reserve("a", 2.0) == pytest.approx(1.0)
    assert limiter.reserve("b", 2.0) == 0.0  # another payer is not slowed down
    now[0] += 10
    assert limiter.reserve("a", 2.0) == 0.0
    assert limiter.reserve("a", 0) == 0.0  # no limit configured

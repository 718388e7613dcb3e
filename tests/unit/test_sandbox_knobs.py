"""Fault knobs: commands, order of effects, and refusal of malformed commands; the sandbox CLI's own knobs."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from fhir_pa_sandbox import cli as sandbox_cli
from fhir_pa_sandbox.config import SandboxConfig
from fhir_pa_sandbox.knobs import AnswerFault, Fault, FaultKnobs, KnobError
from fhir_pa_sandbox.tokens import TokenRejected, TokenStore


def test_failures_come_before_garbage_and_are_used_up() -> None:
    knobs = FaultKnobs()
    knobs.apply({"fail_next": 1, "status": 429, "retry_after": 2, "garbage_next": 1, "garbage": "html"})
    assert knobs.take() == Fault(429, retry_after=2)
    assert knobs.take() == Fault(200, garbage="html")
    assert knobs.take() is None


def test_reset_applies_before_other_keys() -> None:
    knobs = FaultKnobs()
    knobs.apply({"fail_next": 3, "latency_ms": 100})
    knobs.apply({"reset": True, "latency_ms": 5})
    assert knobs.take() is None and knobs.delay_seconds() == 0.005


@pytest.mark.parametrize("command", [
    [], {"fail_next": True}, {"fail_next": 1.5}, {"status": 600}, {"latency_ms": -1}, {"garbage": "zip"},
    {"unknown": 1}, {"reset": 1},
])
def test_malformed_commands_raise_and_leave_the_knobs_alone(command: object) -> None:
    knobs = FaultKnobs()
    knobs.apply({"fail_next": 1})
    with pytest.raises(KnobError):
        knobs.apply(command)
    assert knobs.snapshot()["fail_next"] == 1


# --- answer faults, token expiry ----------------------------------------------------------------------------


def test_answer_faults_are_off_by_default() -> None:
    knobs = FaultKnobs()
    assert all(knobs.take_answer_fault() is None for _ in range(100))
    assert not any(knobs.authenticated_call() for _ in range(100))
    assert knobs.apply({"latency_ms": 1}) is False


def test_slow_rate_holds_answers_back_slow_ms_and_is_repeatable_with_a_seed() -> None:
    def run() -> list[AnswerFault | None]:
        knobs = FaultKnobs()
        knobs.apply({"slow_rate": 0.3, "slow_ms": 1500, "seed": 7})
        return [knobs.take_answer_fault() for _ in range(60)]

    first = run()
    assert first == run()
    assert {fault for fault in first if fault is not None} == {AnswerFault(delay=1.5)}
    assert 0 < sum(fault is not None for fault in first) < 60


def test_slow_ms_defaults_to_three_seconds() -> None:
    knobs = FaultKnobs()
    knobs.apply({"slow_rate": 1})
    assert knobs.take_answer_fault() == AnswerFault(delay=3.0)
    assert knobs.snapshot()["slow_ms"] == 3000


def test_error_after_rate_replaces_answers_with_a_bare_500_and_is_repeatable() -> None:
    def run() -> list[AnswerFault | None]:
        knobs = FaultKnobs()
        knobs.apply({"error_after_rate": 0.5, "seed": 3})
        return [knobs.take_answer_fault() for _ in range(40)]

    first = run()
    assert first == run()
    assert {fault for fault in first if fault is not None} == {AnswerFault(status=500)}
    assert 0 < sum(fault is not None for fault in first) < 40


def test_a_call_gets_at_most_one_answer_fault_slow_first() -> None:
    knobs = FaultKnobs()
    knobs.apply({"slow_rate": 1, "slow_ms": 10, "error_after_rate": 1})
    assert knobs.take_answer_fault() == AnswerFault(delay=0.01)
    knobs.apply({"slow_rate": 0})
    assert knobs.take_answer_fault() == AnswerFault(status=500)


def test_the_same_seed_gives_the_same_faults_with_every_rate_on() -> None:
    def run() -> list[object]:
        knobs = FaultKnobs()
        knobs.apply({"error_rate": 0.2, "slow_rate": 0.2, "error_after_rate": 0.2, "seed": 11})
        calls: list[object] = []
        for _ in range(50):
            before = knobs.take()
            calls.append(before if before is not None else knobs.take_answer_fault())
        return calls

    assert run() == run()


def test_expire_tokens_is_a_one_off_action() -> None:
    knobs = FaultKnobs()
    assert knobs.apply({"expire_tokens": True}) is True
    assert knobs.apply({"expire_tokens": False}) is False
    assert "expire_tokens" not in knobs.snapshot()


def test_token_expiry_every_fires_after_every_nth_call_counted_from_when_it_is_set() -> None:
    knobs = FaultKnobs()
    knobs.apply({"token_expiry_every": 3})
    assert [knobs.authenticated_call() for _ in range(7)] == [False, False, True, False, False, True, False]
    knobs.apply({"token_expiry_every": 2})  # counting starts again
    assert [knobs.authenticated_call() for _ in range(4)] == [False, True, False, True]
    knobs.apply({"token_expiry_every": 0})
    assert not any(knobs.authenticated_call() for _ in range(5))


def test_reset_turns_the_new_knobs_off() -> None:
    knobs = FaultKnobs()
    knobs.apply({"slow_rate": 1, "slow_ms": 5, "error_after_rate": 1, "token_expiry_every": 1})
    knobs.apply({"reset": True})
    assert knobs.take_answer_fault() is None and not knobs.authenticated_call()
    snapshot = knobs.snapshot()
    assert (snapshot["slow_rate"], snapshot["slow_ms"], snapshot["error_after_rate"],
            snapshot["token_expiry_every"]) == (0.0, 3000, 0.0, 0)


@pytest.mark.parametrize(("command", "words"), [
    ({"slow_rate": 1.01}, "slow_rate"), ({"slow_rate": -0.1}, "slow_rate"), ({"slow_rate": True}, "slow_rate"),
    ({"slow_rate": "0.1"}, "slow_rate"), ({"slow_ms": -1}, "slow_ms"), ({"slow_ms": 60_001}, "slow_ms"),
    ({"slow_ms": 1.5}, "slow_ms"), ({"error_after_rate": 2}, "error_after_rate"),
    ({"error_after_rate": None}, "error_after_rate"), ({"expire_tokens": 1}, "expire_tokens"),
    ({"expire_tokens": "yes"}, "expire_tokens"), ({"token_expiry_every": -1}, "token_expiry_every"),
    ({"token_expiry_every": True}, "token_expiry_every"), ({"token_expiry_every": 2.0}, "token_expiry_every"),
    ({"slow_rate": 0.5, "slow_ms": "fast"}, "slow_ms"), ({"expire_token": True}, "unknown key"),
])
def test_bad_new_knobs_are_refused_by_name_and_change_nothing(command: dict[str, Any], words: str) -> None:
    knobs = FaultKnobs()
    knobs.apply({"slow_rate": 0.25, "token_expiry_every": 4})
    before = knobs.snapshot()
    with pytest.raises(KnobError, match=words):
        knobs.apply(command)
    assert knobs.snapshot() == before


def test_expire_all_ends_live_tokens_only_and_later_ones_work() -> None:
    now = [1000.0]
    store = TokenStore(lambda: now[0])
    old, _ = store.issue("c", ["system/Claim.c"], 300)
    ended, _ = store.issue("c", ["system/Claim.c"], 10)
    now[0] += 20  # ``ended`` ran out on its own: not counted again
    assert store.expire_all() == 1
    for value in (old, ended):
        with pytest.raises(TokenRejected, match="expired"):
            store.check(value)
    fresh, _ = store.issue("c", ["system/Claim.c"], 300)
    assert store.check(fresh).client_id == "c"


def test_sandbox_cli_passes_pend_delay_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[SandboxConfig] = []

    class FakeServer:
        def __init__(self, config: SandboxConfig, **_: object) -> None:
            seen.append(config)

        def serve_forever(self, ready: object) -> None:
            return None

    monkeypatch.setattr(sandbox_cli, "SandboxServer", FakeServer)
    app = typer.Typer()
    sandbox_cli.register(app)
    app.command("other")(lambda: None)  # two commands, so the sandbox one is named on the command line
    assert CliRunner().invoke(app, ["sandbox", "--pend-delay-scale", "0.01"]).exit_code == 0
    assert CliRunner().invoke(app, ["sandbox"]).exit_code == 0
    assert [config.pend_delay_scale for config in seen] == [0.01, 1.0]
    refused = CliRunner().invoke(app, ["sandbox", "--pend-delay-scale", "-1"])
    assert refused.exit_code == 2 and len(seen) == 2

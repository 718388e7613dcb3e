"""Fault knobs: commands, order of effects, and refusal of malformed commands."""

from __future__ import annotations

import pytest

from fhir_pa_sandbox.knobs import Fault, FaultKnobs, KnobError


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

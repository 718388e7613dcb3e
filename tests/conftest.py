"""Shared test helpers: where the shared fixtures live, and a sample order factory."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fhir_pa.pas.order import PriorAuthOrder, order_from_data
from tests.postgres import ledger_url, postgres_server, postgres_url  # noqa: F401  - fixtures for every test

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"


def fixture_path(*parts: str) -> Path:
    """A file under ../shared/fixtures, or a clean skip when the fixtures are not beside the repo."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared fixture {'/'.join(parts)} not available")
    return path


def load_fixture(*parts: str) -> Any:
    return json.loads(fixture_path(*parts).read_text(encoding="utf-8"))


def order_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order_id": "order-1",
        "patient": {"given": ["Ann"], "family": "Lee", "birth_date": "1970-01-02", "gender": "female",
                    "mrn": "M1"},
        "coverage": {"member_id": "MEM1"},
        "insurer": {"name": "Payer Inc", "payer_id": "P1"},
        "requester": {"practitioner": {"given": ["Bo"], "family": "Doc", "npi": "1234567893"},
                      "organization": {"name": "Clinic", "npi": "1467586115"}},
        "services": [{"code": "72148", "service_date": "2026-12-01", "quantity": 1, "unit": "visit"}],
        "diagnoses": [{"code": "M54.50"}],
    }
    data.update(overrides)
    return data


@pytest.fixture
def make_order() -> Callable[..., PriorAuthOrder]:
    def make(**overrides: Any) -> PriorAuthOrder:
        return order_from_data(order_data(**overrides))
    return make

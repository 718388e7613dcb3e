from __future__ import annotations

import json
from pathlib import Path

import pytest

from fhir_pa.errors import InputError
from fhir_pa.pas.order import load_order, order_from_data
from tests.conftest import order_data


def test_valid_order_file_loads(tmp_path: Path) -> None:
    file = tmp_path / "order.json"
    file.write_text(json.dumps(order_data()), encoding="utf-8")
    order = load_order(file)
    assert order.order_id == "order-1"
    assert order.services[0].code == "72148"
    assert order.urgency == "standard"


def test_missing_field_names_its_path() -> None:
    data = order_data()
    del data["services"][0]["code"]
    with pytest.raises(InputError) as err:
        order_from_data(data)
    assert err.value.path == "services[0].code"
    assert "required" in err.value.message.lower()


def test_bad_value_is_not_echoed_in_the_error() -> None:
    data = order_data()
    data["patient"]["birth_date"] = "SECRET-NOT-A-DATE"
    with pytest.raises(InputError) as err:
        order_from_data(data)
    assert err.value.path == "patient.birth_date"
    assert "SECRET" not in str(err.value)


def test_subscriber_required_when_not_self() -> None:
    data = order_data(coverage={"member_id": "M", "relationship": "child"})
    with pytest.raises(InputError, match="subscriber is required"):
        order_from_data(data)


def test_diagnosis_index_must_exist() -> None:
    data = order_data()
    data["services"][0]["diagnoses"] = [3]
    with pytest.raises(InputError, match="refers to diagnosis 3"):
        order_from_data(data)


def test_unknown_field_is_refused() -> None:
    with pytest.raises(InputError) as err:
        order_from_data(order_data(colour="blue"))
    assert err.value.path == "colour"


def test_truncated_json_file(tmp_path: Path) -> None:
    file = tmp_path / "order.json"
    file.write_text(json.dumps(order_data())[:-20], encoding="utf-8")
    with pytest.raises(InputError, match="is not JSON"):
        load_order(file)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read order file"):
        load_order(tmp_path / "nope.json")

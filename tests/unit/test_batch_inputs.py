"""A batch's input file: NDJSON lines or CSV rows become orders, or typed input errors naming the line and field."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from fhir_pa.batch.inputs import InputLine, canonical, read_orders
from fhir_pa.errors import InputError
from fhir_pa.workflow import EhrContext, workflow_order
from tests.conftest import order_data

EHR: dict[str, Any] = {"patient_id": "pat-alex", "user": "PractitionerRole/role-robin", "coverage_id": "cov-alex"}
#: A name that must never appear in an error message (errors are safe to log: no patient data).
SECRET_NAME = "Quartermaine"


def write_lines(path: Path, *lines: Any) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
                    encoding="utf-8")
    return path


def wrapped(order_id: str, **overrides: Any) -> dict[str, Any]:
    return {"order": order_data(order_id=order_id, **overrides), "ehr": dict(EHR)}


def test_a_wrapped_line_is_an_order_with_its_ehr_part(tmp_path: Path) -> None:
    [line] = read_orders(write_lines(tmp_path / "orders.ndjson", wrapped("o-1")))
    assert isinstance(line, InputLine) and line.error is None and line.order is not None
    assert (line.order_id, line.line) == ("o-1", 1)
    assert line.order.order_id == "o-1" and line.order.order.services[0].code == "72148"
    assert line.order.ehr == EhrContext(patient_id="pat-alex", user="PractitionerRole/role-robin",
                                        coverage_id="cov-alex")
    # The stored bytes are canonical JSON: a resumed run re-reads exactly the same order.
    assert line.body == canonical(wrapped("o-1"))
    assert workflow_order(json.loads(line.body)) == line.order


def test_a_bare_order_line_has_no_ehr_part(tmp_path: Path) -> None:
    [line] = read_orders(write_lines(tmp_path / "orders.ndjson", order_data(order_id="bare-1")))
    assert line.order is not None and line.order.ehr is None and line.order_id == "bare-1"
    assert line.order.order.patient.family == "Lee"


def test_a_line_that_is_not_json_is_a_typed_error_naming_the_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "orders.ndjson", wrapped("o-1"), '{"order": {"patient": {"family": "'
                       + SECRET_NAME + '"', wrapped("o-3"))
    first, broken, third = read_orders(path)
    assert first.order is not None and third.order is not None and third.line == 3
    assert broken.order is None and isinstance(broken.error, InputError)
    assert broken.error.code == "input" and broken.error.path == "line 2"
    assert broken.order_id == "line-2" and broken.line == 2
    assert "orders.ndjson line 2 is not JSON" in broken.error.one_line()
    assert SECRET_NAME not in str(broken.error)
    assert SECRET_NAME.encode() in broken.body  # the raw line is kept as the run's input, never in the message


@pytest.mark.parametrize(("change", "path"), [
    (lambda d: d["order"]["services"][0].update(code=""), "order.services[0].code"),
    (lambda d: d["order"]["services"][0].update(code_system="loinc"), "order.services[0].code_system"),
    (lambda d: d["order"]["patient"].pop("family"), "order.patient.family"),
    (lambda d: d["order"]["patient"].update(gender=SECRET_NAME), "order.patient.gender"),
    (lambda d: d["ehr"].update(patient_id="not an id!"), "ehr.patient_id"),
    (lambda d: d["ehr"].update(user="role-robin"), "ehr.user"),
    (lambda d: d.update(extra=1), "extra"),
])
def test_an_invalid_order_names_the_field_and_never_the_patient(tmp_path: Path, change: Any, path: str) -> None:
    data = wrapped("o-bad")
    data["order"]["patient"]["given"] = ["Zebulon", SECRET_NAME]
    change(data)
    good, bad = read_orders(write_lines(tmp_path / "orders.ndjson", wrapped("o-good"), data))
    assert good.order is not None and good.error is None
    assert bad.order is None and bad.error is not None and bad.error.code == "input"
    assert bad.order_id == "o-bad" and bad.line == 2
    assert bad.error.path == path
    text = bad.error.one_line()
    assert "orders.ndjson line 2" in text and f"(at {path})" in text
    assert SECRET_NAME not in text and "Zebulon" not in text


@pytest.mark.parametrize("value", [[1, 2], "an order", 42, None])
def test_a_json_line_that_is_not_an_object_is_an_input_error(tmp_path: Path, value: Any) -> None:
    [line] = read_orders(write_lines(tmp_path / "orders.ndjson", value))
    assert line.order is None and line.error is not None and line.error.code == "input"
    assert line.order_id == "line-1"


def test_blank_lines_are_skipped_and_line_numbers_kept(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "orders.ndjson", "", wrapped("o-1"), "   ", "\t", wrapped("o-2"), "")
    lines = read_orders(path)
    assert [(line.order_id, line.line) for line in lines] == [("o-1", 2), ("o-2", 5)]
    assert all(line.order is not None for line in lines)


def test_a_byte_order_mark_and_crlf_line_ends_are_read(tmp_path: Path) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(wrapped("o-1")).encode() + b"\r\n"
                     + json.dumps(wrapped("o-2")).encode() + b"\r\n")
    assert [line.order_id for line in read_orders(path) if line.order is not None] == ["o-1", "o-2"]


def test_an_order_id_used_twice_is_refused_naming_both_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "orders.ndjson", wrapped("o-1"), wrapped("o-2"), "", order_data(order_id="o-1"))
    with pytest.raises(InputError) as caught:
        read_orders(path)
    assert caught.value.code == "input"
    assert "line 4" in caught.value.message and "line 1" in caught.value.message
    assert caught.value.path == "line 4.order_id"


def test_an_invalid_line_still_counts_for_duplicate_ids(tmp_path: Path) -> None:
    invalid = wrapped("o-1")
    invalid["order"]["services"][0]["code"] = ""
    with pytest.raises(InputError, match="line 2 is already used on line 1"):
        read_orders(write_lines(tmp_path / "orders.ndjson", invalid, wrapped("o-1")))


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_an_empty_ndjson_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="holds no orders"):
        read_orders(path)


def test_a_missing_or_binary_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read orders file"):
        read_orders(tmp_path / "nowhere.ndjson")
    binary = tmp_path / "orders.ndjson"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="not UTF-8"):
        read_orders(binary)


# -- CSV -------------------------------------------------------------------------------------------------------------

COLUMNS = ["order_id", "patient.given.0", "patient.given.1", "patient.family", "patient.birth_date", "patient.gender",
           "patient.mrn", "coverage.member_id", "insurer.name", "insurer.payer_id", "requester.practitioner.given.0",
           "requester.practitioner.family", "requester.practitioner.npi", "requester.organization.name",
           "requester.organization.npi", "services.0.code", "services.0.service_date", "services.0.quantity",
           "services.0.unit", "services.1.code", "services.1.code_system", "services.1.service_date",
           "diagnoses.0.code", "ehr.patient_id", "ehr.user", "ehr.coverage_id"]


def csv_row(order_id: str, **cells: str) -> dict[str, str]:
    row = {"order_id": order_id, "patient.given.0": "Ann", "patient.given.1": "", "patient.family": "Lee",
           "patient.birth_date": "1970-01-02", "patient.gender": "female", "patient.mrn": "M1",
           "coverage.member_id": "MEM1", "insurer.name": "Payer Inc", "insurer.payer_id": "P1",
           "requester.practitioner.given.0": "Bo", "requester.practitioner.family": "Doc",
           "requester.practitioner.npi": "1234567893", "requester.organization.name": "Clinic",
           "requester.organization.npi": "1467586115", "services.0.code": "72148",
           "services.0.service_date": "2026-12-01", "services.0.quantity": "1", "services.0.unit": "visit",
           "services.1.code": "", "services.1.code_system": "", "services.1.service_date": "",
           "diagnoses.0.code": "M54.50", "ehr.patient_id": "pat-alex", "ehr.user": "PractitionerRole/role-robin",
           "ehr.coverage_id": "cov-alex"}
    row.update(cells)
    return row


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] = COLUMNS) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_csv_dotted_columns_build_the_same_order_as_the_ndjson_form(tmp_path: Path) -> None:
    [from_csv] = read_orders(write_csv(tmp_path / "orders.csv", [csv_row("o-1")]))
    [from_ndjson] = read_orders(write_lines(tmp_path / "orders.ndjson", wrapped("o-1")))
    assert from_csv.error is None, from_csv.error and from_csv.error.one_line()
    assert from_csv.order is not None and from_csv.order == from_ndjson.order
    assert from_csv.order_id == "o-1" and from_csv.line == 2  # row 1 is the header
    assert from_csv.order.ehr is not None and from_csv.order.ehr.patient_id == "pat-alex"
    # The stored body re-reads to the same order (what the runner does with it).
    assert workflow_order(json.loads(from_csv.body)) == from_csv.order


def test_csv_list_positions_and_empty_cells(tmp_path: Path) -> None:
    rows = [csv_row("o-1", **{"patient.given.1": "Marie", "services.1.code": "E0601", "services.1.code_system":
                               "hcpcs", "services.1.service_date": "2026-12-02"}),
            csv_row("o-2", **{"ehr.patient_id": "", "ehr.user": "", "ehr.coverage_id": ""})]
    two_lines, no_ehr = read_orders(write_csv(tmp_path / "orders.csv", rows))
    assert two_lines.order is not None and no_ehr.order is not None
    assert two_lines.order.order.patient.given == ["Ann", "Marie"]
    assert [(s.code, s.code_system) for s in two_lines.order.order.services] == [("72148", "cpt"),
                                                                                   ("E0601", "hcpcs")]
    # Empty cells are left out: no EHR columns filled means a bare order, straight to PAS.
    assert no_ehr.order.ehr is None and len(no_ehr.order.order.services) == 1


def test_csv_wrapped_columns_work_too(tmp_path: Path) -> None:
    columns = ["order." + c if not c.startswith("ehr.") else c for c in COLUMNS]
    row = {("order." + k if not k.startswith("ehr.") else k): v for k, v in csv_row("o-1").items()}
    [line] = read_orders(write_csv(tmp_path / "orders.csv", [row], columns))
    [from_ndjson] = read_orders(write_lines(tmp_path / "orders.ndjson", wrapped("o-1")))
    assert line.order is not None and line.order == from_ndjson.order


def test_csv_invalid_row_names_the_row_and_field(tmp_path: Path) -> None:
    rows = [csv_row("o-1"), csv_row("o-2", **{"services.0.code": "", "services.0.quantity": "many",
                                              "patient.given.0": SECRET_NAME})]
    good, bad = read_orders(write_csv(tmp_path / "orders.csv", rows))
    assert good.order is not None
    assert bad.order is None and bad.error is not None and bad.line == 3 and bad.order_id == "o-2"
    assert bad.error.path is not None and bad.error.path.startswith("order.services[0]")
    assert "orders.csv line 3" in bad.error.one_line() and SECRET_NAME not in bad.error.one_line()


def test_csv_duplicate_ids_and_empty_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="line 3 is already used on line 2"):
        read_orders(write_csv(tmp_path / "dup.csv", [csv_row("o-1"), csv_row("o-1")]))
    with pytest.raises(InputError, match="holds no orders"):
        read_orders(write_csv(tmp_path / "header-only.csv", []))
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="holds no orders"):
        read_orders(empty)


@pytest.mark.parametrize(("first", "second"), [("services.0.code", "services.code"),
                                               ("patient.given.0", "patient.given.first"),
                                               ("patient.family", "patient.family.0")])
def test_csv_columns_that_contradict_each_other_are_refused(tmp_path: Path, first: str, second: str) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(f"order_id,{first},{second}\no-1,x,y\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_orders(path)
    assert caught.value.path == second and repr(second) in caught.value.message


def test_read_orders_can_check_without_keeping_the_parsed_orders(tmp_path: Path) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_text(json.dumps({"order": order_data(order_id="k1")}) + "\n" + json.dumps(
        {"order": {**order_data(order_id="k2"), "services": []}}) + "\n", encoding="utf-8")
    kept, checked = read_orders(path), read_orders(path, keep=False)
    assert [line.body for line in kept] == [line.body for line in checked]
    assert kept[0].order is not None and checked[0].order is None and checked[0].error is None
    assert checked[1].error is not None and checked[1].error.code == "input"  # still checked

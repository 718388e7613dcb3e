"""A batch's orders from a file: NDJSON (one order per line) or CSV (one order per row, dotted column names).

Each order becomes the canonical JSON bytes the run stores (so a resumed run, or a second worker, works on
exactly the same input) and is validated as a :class:`~fhir_pa.workflow.WorkflowOrder`. A line that is not a
valid order does not stop the batch: it becomes an input error naming the line and the field. CSV columns are
paths into the NDJSON object: ``order_id``, ``patient.given.0``, ``services.0.code``, ``ehr.patient_id`` (a
number picks a list position; empty cells are left out).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir_pa.errors import InputError
from fhir_pa.workflow.model import WorkflowOrder, workflow_order


@dataclass(frozen=True)
class InputLine:
    """One order of the input: its key, its stored bytes, and the order (None when it is not valid, or when it was
    only checked: see ``keep`` of :func:`read_orders`)."""

    order_id: str
    line: int
    body: bytes
    order: WorkflowOrder | None
    error: InputError | None = None


def canonical(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _order_id_of(data: Any, line: int) -> str:
    if isinstance(data, dict):
        inner = data.get("order") if isinstance(data.get("order"), dict) else data
        value = inner.get("order_id") if isinstance(inner, dict) else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    return f"line-{line}"


def parse_line(data: Any, line: int, source: str, *, keep: bool = True) -> InputLine:
    order_id = _order_id_of(data, line)
    body = canonical(data)
    try:
        order = workflow_order(data, source=f"{source} line {line}")
    except InputError as exc:
        return InputLine(order_id, line, body, None, exc)
    return InputLine(order_id, line, body, order if keep else None)


def _set(target: dict[str, Any], path: list[str], value: str, column: str) -> None:
    node: Any = target
    for n, part in enumerate(path):
        last = n == len(path) - 1
        following: Any = value if last else ([] if path[n + 1].isdigit() else {})
        if isinstance(node, list):
            if not part.isdigit():
                raise InputError(f"column {column!r} names a field inside a list", path=column)
            index = int(part)
            while len(node) <= index:
                node.append(None)
            if node[index] is None or last:
                node[index] = following
            node = node[index]
        else:
            if part.isdigit():
                raise InputError(f"column {column!r} puts a list position where a field is expected", path=column)
            if part not in node or last:
                node[part] = following
            node = node[part]


def _csv_rows(text: str, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        return
    columns = [c.strip() for c in reader.fieldnames]
    for number, row in enumerate(reader, start=2):
        data: dict[str, Any] = {}
        for column, raw in zip(columns, row.values(), strict=False):
            if raw is None or not str(raw).strip():
                continue
            _set(data, column.split("."), str(raw).strip(), column)
        # services.0.diagnoses.0 = "0" must be a number for the order model; pydantic accepts digit strings.
        # Order columns beside ehr.* columns are the NDJSON wrapped form {"order": ..., "ehr": ...}.
        yield number, ({"order": {k: v for k, v in data.items() if k != "ehr"}, "ehr": data["ehr"]}
                       if "ehr" in data and "order" not in data else data)


def read_orders(path: str | Path, *, keep: bool = True) -> list[InputLine]:
    """Every order in ``path`` (``.csv`` is CSV, anything else NDJSON). Blank lines are skipped; an order id used
    twice is refused (each order is submitted once, so the input must say which is which).

    ``keep=False`` checks each order but keeps only its id and bytes (a batch parses an order again when it claims
    it; 10,000 parsed orders would hold about 100 MB for nothing)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read orders file {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"orders file {file} is not UTF-8 text") from None
    lines: list[InputLine] = []
    if file.suffix.lower() == ".csv":
        for number, data in _csv_rows(text, file.name):
            lines.append(parse_line(data, number, file.name, keep=keep))
    else:
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                error = InputError(f"{file.name} line {number} is not JSON: {exc.msg} at column {exc.colno}",
                                   path=f"line {number}")
                lines.append(InputLine(f"line-{number}", number, raw.encode("utf-8"), None, error))
                continue
            lines.append(parse_line(data, number, file.name, keep=keep))
    seen: dict[str, int] = {}
    for item in lines:
        if item.order_id in seen:
            raise InputError(f"order id on line {item.line} is already used on line {seen[item.order_id]}",
                             path=f"line {item.line}.order_id")
        seen[item.order_id] = item.line
    if not lines:
        raise InputError(f"orders file {file} holds no orders")
    return lines

"""Turn a payer's bytes into one JSON object, or an :class:`InvalidResponse` that says exactly why not.

Shared by every reader of payer answers (PAS responses, CDS Hooks responses), so a truncated body, an HTML error
page or a BOM is reported the same way everywhere: what it is, and where the JSON broke.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fhir_pa.errors import InvalidResponse


def kind(value: Any) -> str:
    """A JSON type name for messages: the type only, never the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _json_problem(source: str, text: str, exc: json.JSONDecodeError) -> str:
    message = exc.msg.removesuffix(" at")  # "Invalid control character at" reads badly before our "at line"
    where = f"{message} at line {exc.lineno} column {exc.colno}"
    if text.lstrip().startswith("<"):
        return f"{source} is not JSON (it looks like HTML or XML): {where}"
    if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
        return f"{source} is not JSON, it ends too early (truncated?): {where}"
    return f"{source} is not JSON: {where}"


def load_document(data: bytes | str | Mapping[str, Any], source: str, *,
                  expected: str = "a FHIR resource") -> Mapping[str, Any]:
    """The JSON object in ``data``; InvalidResponse naming the problem and where it is."""
    if isinstance(data, Mapping):
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidResponse(f"{source} is not UTF-8 text (bad byte at offset {exc.start})") from None
    elif isinstance(data, str):
        text = data
    else:
        raise InvalidResponse(f"{source} is {kind(data)}, not JSON text")
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise InvalidResponse(f"{source} is empty, not JSON")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidResponse(_json_problem(source, text, exc), path="$") from None
    except RecursionError:
        raise InvalidResponse(f"{source} is JSON nested too deeply to read") from None
    if not isinstance(parsed, Mapping):
        raise InvalidResponse(f"{source} is {kind(parsed)} in JSON, not {expected}", path="$")
    return parsed


__all__ = ["kind", "load_document"]

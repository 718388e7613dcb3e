"""Read the sandbox's editable JSON files, failing with the file name and the JSON path of the problem.

People edit these files by hand, so every complaint says which file and which ``$.a.b[0]`` location is wrong,
as a :class:`~fhir_pa.errors.ConfigurationError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from fhir_pa.errors import ConfigurationError

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def child(path: str, key: str | int) -> str:
    """The JSON path of ``key`` under ``path``: ``$.codes['97110']`` or ``$.keys[0]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if _PLAIN_KEY.match(key) else f"{path}[{json.dumps(key)}]"


class JsonFile:
    """One loaded file: its parsed content and helpers that raise errors naming it."""

    def __init__(self, source: Path | Traversable, name: str | None = None) -> None:
        self.name = name or str(source)
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigurationError(f"cannot read {self.name}: {reason}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigurationError(f"{self.name} is not UTF-8 text (byte {exc.start})") from exc
        try:
            self.data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{self.name} is not valid JSON: {exc.msg} at line {exc.lineno} "
                                     f"column {exc.colno}") from exc

    def error(self, message: str, path: str) -> ConfigurationError:
        return ConfigurationError(f"{self.name}: {message}", path=path)

    def obj(self, value: Any, path: str, *, allowed: set[str] | None = None,
            required: tuple[str, ...] = ()) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error("must be a JSON object", path)
        if allowed is not None:
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise self.error(f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})",
                                 child(path, unknown[0]))
        for key in required:
            if key not in value:
                raise self.error(f"{key!r} is required", child(path, key))
        return value

    def text(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error("must be a non-empty string", path)
        return value

    def optional_text(self, holder: Mapping[str, Any], key: str, path: str) -> str | None:
        return self.text(holder[key], child(path, key)) if key in holder else None

    def integer(self, value: Any, path: str, *, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(f"must be a whole number ≥ {minimum}", path)
        return value

    def number(self, value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.error("must be a positive number", path)
        return float(value)

    def text_list(self, value: Any, path: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.error("must be a list of strings", path)
        return tuple(self.text(item, child(path, i)) for i, item in enumerate(value))

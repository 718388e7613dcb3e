"""Load the profile constraints in ``profiles/`` (data we write from reading the IGs; see its README)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fhir_pa.errors import ConfigurationError


@dataclass(frozen=True)
class ElementRule:
    id: str
    min: int = 0
    max: str = "*"
    pattern: tuple[str, Any] | None = None  # ("patternCode", "active") or ("fixedCode", "order")


@dataclass(frozen=True)
class Profile:
    name: str
    url: str
    version: str
    resource_type: str
    slices: dict[str, dict[str, Any]]
    elements: tuple[ElementRule, ...]


def profiles_dir() -> Path:
    """Where the data lives: ``profiles/`` in a source checkout, ``fhir_pa/_profiles`` in a wheel."""
    package_root = Path(__file__).resolve().parents[1]
    for candidate in (package_root.parents[1] / "profiles", package_root / "_profiles"):
        if candidate.is_dir():
            return candidate
    raise ConfigurationError("profile data not found: neither profiles/ nor fhir_pa/_profiles exists")


def _element(raw: dict[str, Any], where: str) -> ElementRule:
    pattern = raw.get("pattern")
    if pattern is not None and (not isinstance(pattern, dict) or len(pattern) != 1):
        raise ConfigurationError(f"{where}: pattern must be an object with one patternX/fixedX key")
    return ElementRule(
        id=str(raw["id"]),
        min=int(raw.get("min", 0)),
        max=str(raw.get("max", "*")),
        pattern=next(iter(pattern.items())) if pattern else None,
    )


@cache
def load_profile(guide: str, name: str) -> Profile:
    """Read ``profiles/<guide>/<name>.json``; errors name the file and the JSON path."""
    file = profiles_dir() / guide / f"{name}.json"
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"cannot read profile data {file}: {exc}") from None
    try:
        elements = tuple(_element(e, f"{file}: $.elements[{i}]") for i, e in enumerate(raw["elements"]))
        return Profile(name=name, url=raw["profile"], version=raw["version"], resource_type=raw["resourceType"],
                       slices=dict(raw.get("slices", {})), elements=elements)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"profile data {file} is malformed: {exc}") from None


def profile_names(guide: str) -> list[str]:
    return sorted(p.stem for p in (profiles_dir() / guide).glob("*.json"))

"""Read an OperationOutcome leniently into short issues (location + text), for errors and logs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fhir_pa.errors import Issue


def outcome_issues(outcome: Mapping[str, Any]) -> list[Issue]:
    issues: list[Issue] = []
    raw = outcome.get("issue")
    for entry in raw if isinstance(raw, list) else []:
        if not isinstance(entry, Mapping):
            continue
        where = entry.get("expression") or entry.get("location") or []
        path = where[0] if isinstance(where, list) and where and isinstance(where[0], str) else ""
        details = entry.get("details")
        text = entry.get("diagnostics") or (details.get("text") if isinstance(details, Mapping) else None)
        issues.append(Issue(path, str(text or entry.get("code") or "unspecified problem"),
                            rule=str(entry.get("code") or ""), severity=str(entry.get("severity") or "error")))
    return issues


def parse_outcome(body: bytes) -> dict[str, Any] | None:
    """The OperationOutcome in ``body``, or None when the body is not one (RI 401s send plain JSON)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict) and data.get("resourceType") == "OperationOutcome":
        return data
    return None

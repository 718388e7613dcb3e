"""FHIR JSON answers: resources as ``application/fhir+json``, and OperationOutcomes for 4xx answers.

PAS says a 4xx body is a single OperationOutcome (§spec-35) and a 5xx has none; every refusal the sandbox
makes on purpose goes through here so the shape is the same everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from fhir_pa.errors import Issue

FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class OutcomeIssue:
    """One ``OperationOutcome.issue``: FHIR issue code, text, and where (a FHIRPath into the request)."""

    code: str
    diagnostics: str
    expression: str | None = None
    severity: str = "error"
    rule: str | None = None

    def as_json(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code}
        if self.rule:
            issue["details"] = {"text": f"rule {self.rule}"}
        issue["diagnostics"] = self.diagnostics
        if self.expression:
            issue["expression"] = [self.expression]
        return issue


def issue_code(issue: Issue) -> str:
    """The FHIR issue-type code for a request check: ``required``, ``structure`` or ``invalid``."""
    if "required" in issue.message.lower():
        return "required"
    if issue.rule in ("ClaimFirst", "base-R4") or "resolve" in issue.message:
        return "structure"
    return "invalid"


def from_check(issue: Issue) -> OutcomeIssue:
    severity = issue.severity if issue.severity in ("fatal", "error", "warning", "information") else "error"
    path = issue.path if issue.path.startswith("Bundle") or not issue.path else f"Bundle.{issue.path}"
    if issue.path == "resourceType":
        path = "Bundle"
    return OutcomeIssue(issue_code(issue), issue.message, path, severity, issue.rule or None)


def operation_outcome(issues: Iterable[OutcomeIssue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [issue.as_json() for issue in issues]}


def fhir_response(resource: Mapping[str, Any], status: int = 200,
                  headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(body, status_code=status, media_type=FHIR_JSON, headers=dict(headers or {}))


def outcome_response(status: int, *issues: OutcomeIssue,
                     headers: Mapping[str, str] | None = None) -> Response:
    """A 4xx answer whose body is one OperationOutcome."""
    return fhir_response(operation_outcome(issues), status, headers)


def refuse(status: int, code: str, diagnostics: str, expression: str | None = None,
           headers: Mapping[str, str] | None = None) -> Response:
    """Shorthand for a one-issue OperationOutcome answer."""
    return outcome_response(status, OutcomeIssue(code, diagnostics, expression), headers=headers)

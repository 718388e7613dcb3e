"""Tell the payer its form logic failed: the ``$log-questionnaire-errors`` client call (spec-78).

Records carry where (linkId, expression) and what (a message we wrote), never an answer or a chart value: the
OperationOutcome leaves the organisation. :func:`record_from_exception` keeps only the exception's class and the
library's own one-line message for :class:`~fhir_pa.errors.FhirPaError` (those never hold patient data).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from fhir_pa.dtr.elm.errors import ElmError
from fhir_pa.dtr.package import HEADERS, raise_for_outcome
from fhir_pa.errors import FhirPaError, InputError
from fhir_pa.fhir.flow import Flow, exchange

Json = dict[str, Any]
MAX_MESSAGE = 500


@dataclass(frozen=True)
class QuestionnaireError:
    """One failure of a Questionnaire's logic."""

    message: str
    link_id: str | None = None
    #: The expression that failed (e.g. ``"RADPrepopulation".LatestPHResult``) or a FHIRPath location.
    expression: str | None = None
    severity: Literal["fatal", "error", "warning"] = "error"
    #: OperationOutcome issue type: ``processing`` (engine error), ``invalid`` (malformed CQL/ELM), ``not-found``.
    code: str = "processing"


def record_from_exception(exc: BaseException, *, link_id: str | None = None,
                          expression: str | None = None) -> QuestionnaireError:
    """A record from an engine failure; the text is our own message, or just the exception class.

    An :class:`ElmError` names its library and define, which become the expression when none is given.
    """
    text = exc.message if isinstance(exc, FhirPaError) else f"{type(exc).__name__} while evaluating"
    if expression is None and isinstance(exc, ElmError) and exc.define:
        expression = f'"{exc.library}".{exc.define}' if exc.library else exc.define
    return QuestionnaireError(text, link_id=link_id, expression=expression)


def error_outcome(errors: Sequence[QuestionnaireError]) -> Json:
    """One OperationOutcome for ``errors`` (1..*)."""
    if not errors:
        raise InputError("an error log needs at least one error", path="errors")
    issues: list[Json] = []
    for error in errors:
        issue: Json = {"severity": error.severity, "code": error.code,
                       "diagnostics": " ".join(error.message.split())[:MAX_MESSAGE]}
        where = []
        if error.link_id:
            where.append(f"Questionnaire.item.where(linkId='{error.link_id}')")
        if error.expression:
            where.append(error.expression)
        if where:
            issue["expression"] = where
        issues.append(issue)
    return {"resourceType": "OperationOutcome", "issue": issues}


def log_errors_parameters(questionnaires: Sequence[str], outcomes: Sequence[Json]) -> Json:
    """The input Parameters: ``questionnaire`` canonical 1..*, ``operationOutcome`` 1..*."""
    if not questionnaires:
        raise InputError("at least one Questionnaire canonical is required", path="questionnaire")
    if not outcomes:
        raise InputError("at least one OperationOutcome is required", path="operationOutcome")
    for n, outcome in enumerate(outcomes):
        if outcome.get("resourceType") != "OperationOutcome" or not outcome.get("issue"):
            raise InputError("not an OperationOutcome with issues", path=f"operationOutcome[{n}]")
    parameter: list[Json] = [{"name": "questionnaire", "valueCanonical": q} for q in questionnaires]
    parameter += [{"name": "operationOutcome", "resource": o} for o in outcomes]
    return {"resourceType": "Parameters", "parameter": parameter}


def log_errors_url(payer_base: str) -> str:
    return f"{payer_base.rstrip('/')}/Questionnaire/$log-questionnaire-errors"


def log_errors_flow(payer_base: str, questionnaires: Sequence[str],
                    errors: Sequence[QuestionnaireError] = (), *, outcomes: Sequence[Json] = ()) -> Flow[int]:
    """POST the error log; returns the payer's status. A rejection raises :class:`PayerRejected`."""
    all_outcomes = [*outcomes, *([error_outcome(errors)] if errors else [])]
    body = json.dumps(log_errors_parameters(questionnaires, all_outcomes), separators=(",", ":")).encode("utf-8")
    response = yield from exchange(httpx.Request("POST", log_errors_url(payer_base), content=body, headers=HEADERS))
    raise_for_outcome(response.status_code, response.content, "$log-questionnaire-errors")
    return response.status_code


__all__ = [
    "QuestionnaireError",
    "error_outcome",
    "log_errors_flow",
    "log_errors_parameters",
    "log_errors_url",
    "record_from_exception",
]

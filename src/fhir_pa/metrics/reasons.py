"""Why a payer denied a request: the X12 reason codes (HCR03) on the denied items of its newest answer.

Read from the stored response Bundle with :func:`fhir_pa.pas.decision.parse_response`, the same reader that
decided the state, so a reason is never found in a body the client read differently. A denial without a
readable reason is still counted, under a label that says why there is none.
"""

from __future__ import annotations

from fhir_pa.errors import FhirPaError
from fhir_pa.pas.decision import Coding, ItemStatus, parse_response

NO_RESPONSE = "(no response on file)"
UNREADABLE = "(response unreadable)"
NO_REASON = "(no reason given)"


def reason_label(coding: Coding) -> str:
    """``code: display``, or whichever of the two the payer sent."""
    if coding.code and coding.display:
        return f"{coding.code}: {coding.display}"
    return coding.code or coding.display or NO_REASON


def denial_reasons(body: bytes | None) -> tuple[str, ...]:
    """The distinct reason labels of one denied case (each counts once per case), never empty."""
    if body is None:
        return (NO_RESPONSE,)
    try:
        decision = parse_response(body, source="stored response")
    except FhirPaError:
        return (UNREADABLE,)
    labels = [reason_label(coding) for item in decision.items if item.status is ItemStatus.DENIED
              for coding in item.reason_codes]
    return tuple(dict.fromkeys(labels)) or (NO_REASON,)

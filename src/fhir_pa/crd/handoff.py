"""What a CRD decision hands on: to DTR (which forms, under which coverage assertion) and to PAS (the
coverage-information extension echoed on the order inside the PAS Bundle, CRD resp-46).

The PAS side takes :func:`coverage_extensions` into ``ServiceLine.coverage_information``; the PAS Bundle builder
points their ``coverage`` at the Bundle's own Coverage entry (the EHR's reference would not resolve there).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from fhir_pa.crd.client import CrdResult
from fhir_pa.crd.coverage_info import is_coverage_information
from fhir_pa.crd.decision import OrderCoverage

Json = dict[str, Any]


@dataclass(frozen=True)
class DtrHandoff:
    """What DTR's ``$questionnaire-package`` needs from CRD for one order."""

    order: str
    coverage: str | None
    questionnaires: tuple[str, ...]
    coverage_assertion_ids: tuple[str, ...]
    doc_needed: tuple[str, ...]


def dtr_handoff(decision: OrderCoverage) -> DtrHandoff | None:
    """The DTR inputs when the payer asked for documentation (resp-40/41), else None."""
    if not decision.doc_needed and not decision.questionnaires:
        return None
    coverage = next((info.coverage for info in decision.information if info.coverage), None)
    return DtrHandoff(decision.order, coverage, decision.questionnaires, decision.coverage_assertion_ids,
                      decision.doc_needed)


def coverage_extensions(result: CrdResult, order_ref: str) -> list[Json]:
    """The payer's ext-coverage-information repetitions for ``order_ref``, as sent (system actions first)."""
    if result.response is None:
        return []
    for action in result.response.actions():
        if action.type == "update" and action.target == order_ref and action.resource is not None:
            found = [copy.deepcopy(dict(ext)) for ext in action.resource.get("extension", [])
                     if is_coverage_information(ext)]
            if found:
                return found
    return []


__all__ = ["DtrHandoff", "coverage_extensions", "dtr_handoff"]

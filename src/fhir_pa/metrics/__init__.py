"""Reports from the ledger: prior-authorization metrics, and the MIPS "Electronic Prior Authorization" evidence.

Both count cases (an original request with its updates and cancels, :mod:`~fhir_pa.metrics.cases`) and read
only the ledger, never a payer, so they can run at any time against a live ledger.
"""

from fhir_pa.ledger.clock import ClockCounts
from fhir_pa.metrics.cases import Case, load_cases
from fhir_pa.metrics.deadlines import ClockClass, classify
from fhir_pa.metrics.durations import DurationStats, duration_stats
from fhir_pa.metrics.mips import (
    MEASURE,
    MipsEvidence,
    MipsReport,
    MipsRow,
    mips_as_json,
    mips_report,
)
from fhir_pa.metrics.mips_csv import evidence_csv, summary_csv, write_evidence_csv, write_summary_csv
from fhir_pa.metrics.prior_auth import (
    APPROVAL_STATES,
    PriorAuthMetrics,
    ReasonCount,
    UrgencyMetrics,
    metrics_as_json,
    prior_auth_metrics,
    summarize,
)
from fhir_pa.metrics.reasons import denial_reasons
from fhir_pa.metrics.requester import Requester, requester_of

__all__ = [
    "APPROVAL_STATES",
    "MEASURE",
    "Case",
    "ClockClass",
    "ClockCounts",
    "DurationStats",
    "MipsEvidence",
    "MipsReport",
    "MipsRow",
    "PriorAuthMetrics",
    "ReasonCount",
    "Requester",
    "UrgencyMetrics",
    "classify",
    "denial_reasons",
    "duration_stats",
    "evidence_csv",
    "load_cases",
    "metrics_as_json",
    "mips_as_json",
    "mips_report",
    "prior_auth_metrics",
    "requester_of",
    "summarize",
    "summary_csv",
    "write_evidence_csv",
    "write_summary_csv",
]

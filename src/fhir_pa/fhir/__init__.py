"""FHIR plumbing shared by CRD, DTR and PAS: retries, OperationOutcomes."""

from fhir_pa.fhir.outcome import outcome_issues, parse_outcome
from fhir_pa.fhir.retry import RetryPolicy

__all__ = ["RetryPolicy", "outcome_issues", "parse_outcome"]

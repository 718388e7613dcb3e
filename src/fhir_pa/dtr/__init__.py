"""DTR (Da Vinci Documentation Templates and Rules 2.2): fetch a payer's forms, prepopulate them by running the
payer's CQL (as ELM JSON, on our own engine in :mod:`fhir_pa.dtr.elm`) and FHIRPath against the chart, let a
person finish them, and produce the QuestionnaireResponse that goes into PAS.

Typical use after CRD said documentation is needed::

    with DtrClient(payer) as dtr:
        found = dtr.packages(parameters_from_handoff(dtr_handoff(decision), coverage, [order]))
    for package in found.packages:
        filled = populate(package.bundle, chart, launch={"patient": "Patient/123"})
        ...  # a person answers what the chart could not
        done = finish_response(filled.response, coverage="Coverage/9", orders=["ServiceRequest/7"])
        ensure_complete(done, package.questionnaire)
        order = attach_documentation(order, qr_bundle(done))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fhir_pa._lazy import lazy_getattr

if TYPE_CHECKING:
    from fhir_pa.dtr.adaptive import AdaptiveIncomplete, AdaptiveResult, adaptive_flow
    from fhir_pa.dtr.attach import attach_documentation
    from fhir_pa.dtr.client import AsyncDtrClient, DtrClient
    from fhir_pa.dtr.completion import IncompleteResponse, completion_issues, compute_enabled, ensure_complete
    from fhir_pa.dtr.editing import set_answers
    from fhir_pa.dtr.errors_log import QuestionnaireError, log_errors_flow, record_from_exception
    from fhir_pa.dtr.origin import origin_extension, read_author, read_source, with_origin
    from fhir_pa.dtr.package import (
        PackageCache,
        PackageSet,
        QuestionnairePackage,
        check_package_parameters,
        package_flow,
        package_parameters,
        parameters_from_handoff,
        parameters_from_pended,
        read_package_response,
    )
    from fhir_pa.dtr.prepopulate import PopulateError, PopulateResult, PopulationIssue, populate, read_packages
    from fhir_pa.dtr.response import check_qr_bundle, check_response, finish_response, qr_bundle

#: Imported on first use: ``fhir-pa dtr eval`` needs the ELM engine, not the HTTP clients and PAS behind them.
_LAZY: dict[str, str] = {
    "AdaptiveIncomplete": "fhir_pa.dtr.adaptive",
    "AdaptiveResult": "fhir_pa.dtr.adaptive",
    "AsyncDtrClient": "fhir_pa.dtr.client",
    "DtrClient": "fhir_pa.dtr.client",
    "IncompleteResponse": "fhir_pa.dtr.completion",
    "PackageCache": "fhir_pa.dtr.package",
    "PackageSet": "fhir_pa.dtr.package",
    "PopulateError": "fhir_pa.dtr.prepopulate",
    "PopulateResult": "fhir_pa.dtr.prepopulate",
    "PopulationIssue": "fhir_pa.dtr.prepopulate",
    "QuestionnaireError": "fhir_pa.dtr.errors_log",
    "QuestionnairePackage": "fhir_pa.dtr.package",
    "adaptive_flow": "fhir_pa.dtr.adaptive",
    "attach_documentation": "fhir_pa.dtr.attach",
    "check_package_parameters": "fhir_pa.dtr.package",
    "check_qr_bundle": "fhir_pa.dtr.response",
    "check_response": "fhir_pa.dtr.response",
    "completion_issues": "fhir_pa.dtr.completion",
    "compute_enabled": "fhir_pa.dtr.completion",
    "ensure_complete": "fhir_pa.dtr.completion",
    "finish_response": "fhir_pa.dtr.response",
    "log_errors_flow": "fhir_pa.dtr.errors_log",
    "origin_extension": "fhir_pa.dtr.origin",
    "package_flow": "fhir_pa.dtr.package",
    "package_parameters": "fhir_pa.dtr.package",
    "parameters_from_handoff": "fhir_pa.dtr.package",
    "parameters_from_pended": "fhir_pa.dtr.package",
    "populate": "fhir_pa.dtr.prepopulate",
    "qr_bundle": "fhir_pa.dtr.response",
    "read_author": "fhir_pa.dtr.origin",
    "read_package_response": "fhir_pa.dtr.package",
    "read_packages": "fhir_pa.dtr.prepopulate",
    "read_source": "fhir_pa.dtr.origin",
    "set_answers": "fhir_pa.dtr.editing",
    "record_from_exception": "fhir_pa.dtr.errors_log",
    "with_origin": "fhir_pa.dtr.origin",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "AdaptiveIncomplete",
    "AdaptiveResult",
    "AsyncDtrClient",
    "DtrClient",
    "IncompleteResponse",
    "PackageCache",
    "PackageSet",
    "PopulateError",
    "PopulateResult",
    "PopulationIssue",
    "QuestionnaireError",
    "QuestionnairePackage",
    "adaptive_flow",
    "attach_documentation",
    "check_package_parameters",
    "check_qr_bundle",
    "check_response",
    "completion_issues",
    "compute_enabled",
    "ensure_complete",
    "finish_response",
    "log_errors_flow",
    "origin_extension",
    "package_flow",
    "package_parameters",
    "parameters_from_handoff",
    "parameters_from_pended",
    "populate",
    "qr_bundle",
    "read_author",
    "read_package_response",
    "read_packages",
    "read_source",
    "record_from_exception",
    "set_answers",
    "with_origin",
]

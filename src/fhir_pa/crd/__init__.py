"""CRD (Da Vinci Coverage Requirements Discovery 2.2.1): call a payer's CDS Hooks service at order time and turn
its answer into a typed coverage decision per order.

Typical use::

    payer = CrdPayer(cds_base_url="https://payer.example/cds-services", identity=CdsClientIdentity(key, "my-ehr"))
    ehr = Ehr(fhir_server="https://ehr.example/fhir", http=httpx.Client(), auth=..., token_issuer=my_issuer)
    with CrdClient(payer, ehr) as crd:
        result = crd.call("order-sign", order_sign_context(user_id=..., patient_id=..., draft_orders=[order],
                                                           fhir_server=ehr.fhir_server))
    decision = result.decision("ServiceRequest/123")   # covered? pa_needed? doc_needed? questionnaires?
    order = apply_coverage_information(order, result.response.system_actions[0])
"""

from fhir_pa.crd.apply import apply_coverage_information, auto_applicable
from fhir_pa.crd.authorization import FhirAuthorization, StaticTokenIssuer, TokenIssuer, scopes_for
from fhir_pa.crd.cards import Action, Card, HookResponse, Indicator, Link, Source, Suggestion, parse_hook_response
from fhir_pa.crd.checks import check_client_jwt, check_hook_request
from fhir_pa.crd.client import AsyncCrdClient, CrdClient, CrdPayer, CrdResult, Ehr, TimeBudget
from fhir_pa.crd.coverage_info import (
    EXT_COVERAGE_INFORMATION,
    CoverageInformation,
    check_coverage_information,
    coverage_information_of,
)
from fhir_pa.crd.decision import OrderCoverage, coverage_decisions, indeterminate
from fhir_pa.crd.discovery import CdsService, Discovery, parse_discovery
from fhir_pa.crd.explain import explain_json
from fhir_pa.crd.handoff import DtrHandoff, coverage_extensions, dtr_handoff
from fhir_pa.crd.hooks import (
    HOOKS,
    PRIMARY_HOOKS,
    appointment_book_context,
    encounter_context,
    hook_request,
    order_dispatch_context,
    order_select_context,
    order_sign_context,
)
from fhir_pa.crd.identity import CdsClientIdentity
from fhir_pa.crd.prefetch import PrefetchResult, aprefetch, prefetch, prefetch_flow, primary_coverage

__all__ = [
    "EXT_COVERAGE_INFORMATION",
    "HOOKS",
    "PRIMARY_HOOKS",
    "Action",
    "AsyncCrdClient",
    "Card",
    "CdsClientIdentity",
    "CdsService",
    "CoverageInformation",
    "CrdClient",
    "CrdPayer",
    "CrdResult",
    "Discovery",
    "DtrHandoff",
    "Ehr",
    "FhirAuthorization",
    "HookResponse",
    "Indicator",
    "Link",
    "OrderCoverage",
    "PrefetchResult",
    "Source",
    "StaticTokenIssuer",
    "Suggestion",
    "TimeBudget",
    "TokenIssuer",
    "apply_coverage_information",
    "appointment_book_context",
    "aprefetch",
    "auto_applicable",
    "check_client_jwt",
    "check_coverage_information",
    "check_hook_request",
    "coverage_decisions",
    "coverage_extensions",
    "coverage_information_of",
    "dtr_handoff",
    "encounter_context",
    "explain_json",
    "hook_request",
    "indeterminate",
    "order_dispatch_context",
    "order_select_context",
    "order_sign_context",
    "parse_discovery",
    "parse_hook_response",
    "prefetch",
    "prefetch_flow",
    "primary_coverage",
    "scopes_for",
]

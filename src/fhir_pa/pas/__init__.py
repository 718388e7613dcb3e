"""PAS (Da Vinci Prior Authorization Support 2.2.1): build, check, submit, and read the decision."""

from fhir_pa.config import Sender
from fhir_pa.pas.bundle import PasRequest, build_request_bundle
from fhir_pa.pas.checks import check_request_bundle, ensure_valid
from fhir_pa.pas.decision import (
    AuthorizedItem,
    Coding,
    DecisionStatus,
    InformationRequest,
    ItemDecision,
    ItemStatus,
    PasDecision,
    Period,
    ProcessingError,
    Quantity,
    decision_as_json,
    parse_response,
)
from fhir_pa.pas.order import PriorAuthOrder, load_order, order_from_data
from fhir_pa.pas.submit import AsyncPasClient, PasClient, SubmitResult

__all__ = [
    "AsyncPasClient",
    "AuthorizedItem",
    "Coding",
    "DecisionStatus",
    "InformationRequest",
    "ItemDecision",
    "ItemStatus",
    "PasClient",
    "PasDecision",
    "PasRequest",
    "Period",
    "PriorAuthOrder",
    "ProcessingError",
    "Quantity",
    "Sender",
    "SubmitResult",
    "build_request_bundle",
    "check_request_bundle",
    "decision_as_json",
    "ensure_valid",
    "load_order",
    "order_from_data",
    "parse_response",
]

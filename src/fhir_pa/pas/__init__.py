"""PAS (Da Vinci Prior Authorization Support 2.2.1): build, check, submit, read the decision, and follow a
pended request to its final decision (notifications, polling, ``$inquire``, update and cancel)."""

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
from fhir_pa.pas.inquiry import InquiryResult, build_inquiry_bundle, parse_inquiry_response
from fhir_pa.pas.notification import Notification, NotificationEvent, NotificationType, parse_notification
from fhir_pa.pas.order import PriorAuthOrder, load_order, order_from_data
from fhir_pa.pas.poll import PollOutcome
from fhir_pa.pas.receiver import DecisionUpdate, NotificationReceiver, process_notification
from fhir_pa.pas.submit import AsyncPasClient, PasClient, SubmitResult
from fhir_pa.pas.subscribe import SubscriptionCheck
from fhir_pa.pas.subscription import SubscriptionSettings, build_subscription
from fhir_pa.pas.track import TrackResult
from fhir_pa.pas.update import build_cancel_bundle, build_update_bundle, check_update_bundle

__all__ = [
    "AsyncPasClient",
    "AuthorizedItem",
    "Coding",
    "DecisionStatus",
    "DecisionUpdate",
    "InformationRequest",
    "InquiryResult",
    "ItemDecision",
    "ItemStatus",
    "Notification",
    "NotificationEvent",
    "NotificationReceiver",
    "NotificationType",
    "PasClient",
    "PasDecision",
    "PasRequest",
    "Period",
    "PollOutcome",
    "PriorAuthOrder",
    "ProcessingError",
    "Quantity",
    "Sender",
    "SubmitResult",
    "SubscriptionCheck",
    "SubscriptionSettings",
    "TrackResult",
    "build_cancel_bundle",
    "build_inquiry_bundle",
    "build_request_bundle",
    "build_subscription",
    "build_update_bundle",
    "check_request_bundle",
    "check_update_bundle",
    "decision_as_json",
    "ensure_valid",
    "load_order",
    "order_from_data",
    "parse_inquiry_response",
    "parse_notification",
    "parse_response",
    "process_notification",
]

"""The ledger: durable records of every request, the bytes exchanged, notifications, and the CMS decision clock."""

from fhir_pa.ledger.clock import deadline
from fhir_pa.ledger.hooks import HookCall, HookLog
from fhir_pa.ledger.notifications import NotificationLog, StoredNotification
from fhir_pa.ledger.store import (
    APPLIED,
    FINAL_STATES,
    RESENDABLE_STATES,
    STALE,
    UNCHANGED,
    Event,
    Exchange,
    Ledger,
    LedgerRecord,
)
from fhir_pa.ledger.subscriptions import SubscriptionBook, SubscriptionRecord

__all__ = [
    "APPLIED",
    "FINAL_STATES",
    "RESENDABLE_STATES",
    "STALE",
    "UNCHANGED",
    "Event",
    "Exchange",
    "HookCall",
    "HookLog",
    "Ledger",
    "LedgerRecord",
    "NotificationLog",
    "StoredNotification",
    "SubscriptionBook",
    "SubscriptionRecord",
    "deadline",
]

"""The ledger: durable records of every request, the bytes exchanged, and the CMS decision clock."""

from fhir_pa.ledger.clock import deadline
from fhir_pa.ledger.store import FINAL_STATES, RESENDABLE_STATES, Event, Exchange, Ledger, LedgerRecord

__all__ = ["FINAL_STATES", "RESENDABLE_STATES", "Event", "Exchange", "Ledger", "LedgerRecord", "deadline"]

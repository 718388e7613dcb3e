"""fhir-pa: electronic prior authorization over FHIR R4 (Da Vinci CRD, DTR, PAS).

The names here are the public face; each subpackage (``auth``, ``crd``, ``dtr``, ``pas``, ``ledger``, ``fhir``) shows
its own. They are imported on first use, so a command that needs only part of the library (``fhir-pa dtr eval``)
does not pay for loading the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fhir_pa._lazy import lazy_getattr
from fhir_pa.errors import (
    AuthError,
    ConfigurationError,
    FhirPaError,
    InputError,
    InvalidResponse,
    Issue,
    LedgerError,
    PayerRejected,
    PayerUnavailable,
    ProfileError,
    TokenError,
    TransportError,
)

if TYPE_CHECKING:
    from fhir_pa.auth import SigningKey, SmartBackendAuth, generate_key, load_signing_key
    from fhir_pa.config import PAS_SCOPES, PayerConfig, PollSettings
    from fhir_pa.fhir.retry import RetryPolicy
    from fhir_pa.ledger import Ledger, LedgerRecord
    from fhir_pa.pas import (
        AsyncPasClient,
        DecisionStatus,
        DecisionUpdate,
        NotificationReceiver,
        PasClient,
        PasDecision,
        PriorAuthOrder,
        Sender,
        SubmitResult,
        SubscriptionSettings,
        TrackResult,
        build_request_bundle,
        check_request_bundle,
        load_order,
        parse_response,
    )

_LAZY: dict[str, str] = {
    **dict.fromkeys(("SigningKey", "SmartBackendAuth", "generate_key", "load_signing_key"), "fhir_pa.auth"),
    **dict.fromkeys(("PAS_SCOPES", "PayerConfig", "PollSettings"), "fhir_pa.config"),
    "RetryPolicy": "fhir_pa.fhir.retry",
    **dict.fromkeys(("Ledger", "LedgerRecord"), "fhir_pa.ledger"),
    **dict.fromkeys(("AsyncPasClient", "DecisionStatus", "DecisionUpdate", "NotificationReceiver", "PasClient",
                     "PasDecision", "PriorAuthOrder", "Sender", "SubmitResult", "SubscriptionSettings", "TrackResult",
                     "build_request_bundle", "check_request_bundle", "load_order", "parse_response"), "fhir_pa.pas"),
}


__getattr__ = lazy_getattr(__name__, _LAZY)

__version__ = "0.1.0"

__all__ = [
    "PAS_SCOPES",
    "AsyncPasClient",
    "AuthError",
    "ConfigurationError",
    "DecisionStatus",
    "DecisionUpdate",
    "FhirPaError",
    "InputError",
    "InvalidResponse",
    "Issue",
    "Ledger",
    "LedgerError",
    "LedgerRecord",
    "NotificationReceiver",
    "PasClient",
    "PasDecision",
    "PayerConfig",
    "PayerRejected",
    "PayerUnavailable",
    "PollSettings",
    "PriorAuthOrder",
    "ProfileError",
    "RetryPolicy",
    "Sender",
    "SigningKey",
    "SmartBackendAuth",
    "SubmitResult",
    "SubscriptionSettings",
    "TokenError",
    "TrackResult",
    "TransportError",
    "__version__",
    "build_request_bundle",
    "check_request_bundle",
    "generate_key",
    "load_order",
    "load_signing_key",
    "parse_response",
]

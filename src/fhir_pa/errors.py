"""The one error tree of fhir-pa.

Every error the library raises on purpose is a :class:`FhirPaError`. Messages are single lines that say
what is wrong and where (a JSON/FHIRPath location when there is one). They never carry patient data or
key material, so they are safe to log and to show to technical staff; callers that need the payer's own
words get them from structured attributes (``outcome``, ``issues``), not from the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class FhirPaError(Exception):
    """Base of every error fhir-pa raises on purpose."""

    #: Short machine-readable kind, printed by the CLI and stored in the ledger.
    code = "error"

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.message = " ".join(message.split())
        self.path = path
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The message as one line, with the location when known."""
        where = f" (at {self.path})" if self.path else ""
        return f"{self.message}{where}"


# --- configuration and local input ---------------------------------------------------------------


class ConfigurationError(FhirPaError):
    """The library was set up wrongly: missing payer URL, unreadable key file, bad rule data."""

    code = "configuration"


class KeyFileError(ConfigurationError):
    """A key file is missing, unreadable, or holds no usable signing key."""

    code = "key-file"


class InputError(FhirPaError):
    """Input the caller gave us (an order file, a response file) is malformed."""

    code = "input"


@dataclass(frozen=True)
class Issue:
    """One problem found by a check: where it is, which rule, and what is wrong."""

    path: str
    message: str
    rule: str = ""
    severity: str = "error"

    def __str__(self) -> str:
        rule = f"[{self.rule}] " if self.rule else ""
        return f"{rule}{self.path}: {self.message}"


class ProfileError(FhirPaError):
    """A resource we were about to send breaks a rule of its profile; nothing was sent."""

    code = "profile"

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = tuple(issues)
        first = self.issues[0] if self.issues else Issue("", "unknown problem")
        more = f" (+{len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
        rule = f"[{first.rule}] " if first.rule else ""
        super().__init__(f"{rule}{first.message}{more}", path=first.path)


# --- talking to a payer -------------------------------------------------------------------------


class TransportError(FhirPaError):
    """The payer could not be reached, or did not answer in time, after every allowed retry."""

    code = "transport"


class AuthError(FhirPaError):
    """Getting or using an access token failed."""

    code = "auth"


class DiscoveryError(AuthError):
    """``.well-known/smart-configuration`` is missing or unusable."""

    code = "discovery"


class TokenError(AuthError):
    """The token endpoint refused us (an RFC 6749 error body) or answered nonsense."""

    code = "token"

    def __init__(self, message: str, *, status: int | None = None, error: str | None = None,
                 description: str | None = None) -> None:
        self.status = status
        self.error = error
        self.description = description
        details = ", ".join(
            part for part in (
                f"error={error}" if error else "",
                f"description={description!r}" if description else "",
                f"HTTP {status}" if status is not None else "",
            ) if part
        )
        super().__init__(f"{message} ({details})" if details else message)


class PayerError(FhirPaError):
    """The payer answered, but not with what we asked for."""

    code = "payer"


class PayerRejected(PayerError):
    """A 4xx answer: the request will not succeed if sent again unchanged. Never retried.

    ``outcome`` is the OperationOutcome the payer sent (or ``None``); ``issues`` are its issues in short form.
    """

    code = "rejected"

    def __init__(self, status: int, outcome: dict[str, Any] | None, issues: Sequence[Issue] = ()) -> None:
        self.status = status
        self.outcome = outcome
        self.issues = tuple(issues)
        detail = f": {self.issues[0].message}" if self.issues else ""
        super().__init__(f"payer rejected the request with HTTP {status}{detail}",
                         path=self.issues[0].path if self.issues and self.issues[0].path else None)


class PayerUnavailable(PayerError):
    """5xx answers kept coming after every allowed retry."""

    code = "unavailable"

    def __init__(self, status: int, attempts: int) -> None:
        self.status = status
        self.attempts = attempts
        super().__init__(f"payer answered HTTP {status} on all {attempts} attempts")


class InvalidResponse(PayerError):
    """The payer's answer is not the FHIR we expected: not JSON, truncated, or the wrong resource."""

    code = "invalid-response"


# --- local state --------------------------------------------------------------------------------


class LedgerError(FhirPaError):
    """The ledger could not be read or written, or a record is not where it should be."""

    code = "ledger"


__all__ = [
    "AuthError",
    "ConfigurationError",
    "DiscoveryError",
    "FhirPaError",
    "InputError",
    "InvalidResponse",
    "Issue",
    "KeyFileError",
    "LedgerError",
    "PayerError",
    "PayerRejected",
    "PayerUnavailable",
    "ProfileError",
    "TokenError",
    "TransportError",
]

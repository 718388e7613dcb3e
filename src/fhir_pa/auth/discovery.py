"""SMART discovery: read ``.well-known/smart-configuration`` leniently, requiring only what we use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fhir_pa.errors import DiscoveryError


@dataclass(frozen=True)
class SmartConfiguration:
    """What a backend client needs from ``.well-known/smart-configuration``; absent lists are empty."""

    token_endpoint: str
    grant_types_supported: tuple[str, ...] = ()
    token_endpoint_auth_methods_supported: tuple[str, ...] = ()
    token_endpoint_auth_signing_alg_values_supported: tuple[str, ...] = ()
    scopes_supported: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()


def smart_configuration_url(fhir_base_url: str) -> str:
    """Where SMART discovery lives for a FHIR base URL (with or without a trailing slash)."""
    return f"{fhir_base_url.rstrip('/')}/.well-known/smart-configuration"


def _strings(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key)
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def parse_smart_configuration(doc: Any, *, source: str) -> SmartConfiguration:
    """Read a discovery document from ``source`` (a URL, for messages).

    Only ``token_endpoint`` is required, as an absolute http(s) URL. Everything else is optional here even
    where SMART says REQUIRED, because real servers omit fields a backend client can do without.
    """
    if not isinstance(doc, Mapping):
        raise DiscoveryError(f"{source} is not a JSON object")
    endpoint = doc.get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        raise DiscoveryError(f"{source} has no usable token_endpoint", path="token_endpoint")
    return SmartConfiguration(
        token_endpoint=endpoint,
        grant_types_supported=_strings(doc, "grant_types_supported"),
        token_endpoint_auth_methods_supported=_strings(doc, "token_endpoint_auth_methods_supported"),
        token_endpoint_auth_signing_alg_values_supported=_strings(
            doc, "token_endpoint_auth_signing_alg_values_supported"),
        scopes_supported=_strings(doc, "scopes_supported"),
        capabilities=_strings(doc, "capabilities"),
    )

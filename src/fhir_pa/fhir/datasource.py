"""Where EHR data comes from: an httpx client for a FHIR base URL, over the network or in memory.

The prefetch engine takes nothing but an httpx client and a base URL, so a real EHR FHIR API, a loopback sandbox
EHR and a :class:`~fhir_pa.fhir.memory.MemoryFhirServer` are interchangeable. These helpers only fix the defaults
that matter for FHIR reads: JSON ``Accept``, a timeout, and no redirects (a token must not follow one elsewhere).
"""

from __future__ import annotations

import httpx

from fhir_pa.errors import ConfigurationError
from fhir_pa.fhir.memory import MemoryFhirServer

FHIR_ACCEPT = {"Accept": "application/fhir+json"}
DEFAULT_TIMEOUT = 10.0


def check_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash; raises ConfigurationError unless it is an absolute http(s) URL."""
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError("the FHIR base URL must be an absolute http(s) URL", path="fhir_base")
    return base_url.rstrip("/")


def fhir_client(base_url: str, *, auth: httpx.Auth | None = None, timeout: float = DEFAULT_TIMEOUT,
                transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """A blocking client for the FHIR server at ``base_url`` (relative request URLs resolve against it)."""
    return httpx.Client(base_url=check_base_url(base_url), auth=auth, timeout=timeout, headers=FHIR_ACCEPT,
                        follow_redirects=False, transport=transport)


def async_fhir_client(base_url: str, *, auth: httpx.Auth | None = None, timeout: float = DEFAULT_TIMEOUT,
                      transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The async twin of :func:`fhir_client`."""
    return httpx.AsyncClient(base_url=check_base_url(base_url), auth=auth, timeout=timeout, headers=FHIR_ACCEPT,
                             follow_redirects=False, transport=transport)


def memory_client(server: MemoryFhirServer, *, auth: httpx.Auth | None = None) -> httpx.Client:
    """A blocking client whose requests are answered by ``server`` (base URL ``server.base_url``)."""
    return fhir_client(server.base_url, auth=auth, transport=server.transport())


def memory_async_client(server: MemoryFhirServer, *, auth: httpx.Auth | None = None) -> httpx.AsyncClient:
    """An async client whose requests are answered by ``server``."""
    return async_fhir_client(server.base_url, auth=auth, transport=server.transport())


__all__ = ["async_fhir_client", "check_base_url", "fhir_client", "memory_async_client", "memory_client"]

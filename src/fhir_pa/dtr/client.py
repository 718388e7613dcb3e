"""Talk DTR to a payer: ``$questionnaire-package``, ``$next-question`` and ``$log-questionnaire-errors``.

The protocol lives in flows (:mod:`fhir_pa.dtr.package`, :mod:`fhir_pa.dtr.adaptive`,
:mod:`fhir_pa.dtr.errors_log`); these clients only run them, over SMART Backend Services auth to the payer's FHIR
base (the same registration as PAS), sync or async. Packages are cached per inputs, so a repeat call sends
``changedsince`` and a "nothing changed" answer gives back the cached forms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

import httpx

from fhir_pa.config import PayerConfig
from fhir_pa.dtr.adaptive import AdaptiveResult, NextVersion, adaptive_flow
from fhir_pa.dtr.errors_log import QuestionnaireError, log_errors_flow
from fhir_pa.dtr.package import PackageCache, PackageSet, package_flow
from fhir_pa.fhir.flow import run_async, run_sync
from fhir_pa.pas.submit_core import make_auth

Answer = Callable[[dict[str, Any]], dict[str, Any]]


class DtrClient:
    """Synchronous DTR client for one payer."""

    def __init__(self, payer: PayerConfig, *, http: httpx.Client | None = None, auth: httpx.Auth | None = None,
                 cache: PackageCache | None = None) -> None:
        self.payer = payer
        self._owns_http = http is None
        self.http = http or httpx.Client(timeout=payer.timeout)
        self.auth = auth or make_auth(payer)
        self.cache = cache if cache is not None else PackageCache()

    def packages(self, parameters: Mapping[str, Any]) -> PackageSet:
        """``$questionnaire-package`` with ``parameters`` (see :func:`fhir_pa.dtr.package.package_parameters`)."""
        return run_sync(package_flow(self.payer.base, parameters, cache=self.cache), self.http, self.auth)

    def next_questions(self, response: Mapping[str, Any], answer: Answer, *, base: str | None = None,
                       version: NextVersion = "2.2") -> AdaptiveResult:
        """Run an adaptive form to completion; ``answer`` fills each round's new items."""
        flow = adaptive_flow(base or self.payer.base, response, answer, version=version)
        return run_sync(flow, self.http, self.auth)

    def log_errors(self, questionnaires: Sequence[str], errors: Sequence[QuestionnaireError]) -> int:
        """Report evaluation failures to the payer (spec-78); returns the HTTP status."""
        return run_sync(log_errors_flow(self.payer.base, questionnaires, errors), self.http, self.auth)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncDtrClient:
    """Asynchronous DTR client for one payer; the same behaviour as :class:`DtrClient`."""

    def __init__(self, payer: PayerConfig, *, http: httpx.AsyncClient | None = None,
                 auth: httpx.Auth | None = None, cache: PackageCache | None = None) -> None:
        self.payer = payer
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(timeout=payer.timeout)
        self.auth = auth or make_auth(payer)
        self.cache = cache if cache is not None else PackageCache()

    async def packages(self, parameters: Mapping[str, Any]) -> PackageSet:
        return await run_async(package_flow(self.payer.base, parameters, cache=self.cache), self.http, self.auth)

    async def next_questions(self, response: Mapping[str, Any], answer: Answer, *, base: str | None = None,
                             version: NextVersion = "2.2") -> AdaptiveResult:
        flow = adaptive_flow(base or self.payer.base, response, answer, version=version)
        return await run_async(flow, self.http, self.auth)

    async def log_errors(self, questionnaires: Sequence[str], errors: Sequence[QuestionnaireError]) -> int:
        return await run_async(log_errors_flow(self.payer.base, questionnaires, errors), self.http, self.auth)

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["AsyncDtrClient", "DtrClient"]

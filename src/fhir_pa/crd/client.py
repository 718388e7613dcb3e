"""Call a payer's CRD service for one hook and get a typed coverage decision per order, within a time budget.

One call: discovery (cached, refreshed daily, and refreshed once before giving up after an error, found-16/17),
prefetch from the EHR's data with the service's own templates, a short-lived narrowly scoped
``fhirAuthorization``, a fresh ``hookInstance`` and a fresh client JWT (``aud`` = the exact service URL). The
caller is never blocked past the budget (5 s, 10 s for appointment-book and for a cold first call): when time
runs out, every order gets an *indeterminate* decision with reason ``technical`` and the late answer is dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Self

import httpx

from fhir_pa.crd.apply import apply_coverage_information, auto_applicable
from fhir_pa.crd.authorization import DEFAULT_LIFETIME, TokenIssuer, scopes_for
from fhir_pa.crd.cards import Card, HookResponse, parse_hook_response
from fhir_pa.crd.decision import OrderCoverage, coverage_decisions, indeterminate
from fhir_pa.crd.discovery import CdsService, Discovery, discovery_url, parse_discovery
from fhir_pa.crd.hooks import APPOINTMENT_BOOK, PRIMARY_HOOKS, context_orders, hook_request, order_refs
from fhir_pa.crd.identity import CdsClientIdentity
from fhir_pa.crd.prefetch import PrefetchResult, prefetch_flow
from fhir_pa.errors import FhirPaError, PayerError
from fhir_pa.fhir.flow import run_async, run_sync
from fhir_pa.ledger.store import Ledger

log = logging.getLogger(__name__)
JSON = "application/json"
#: What we send when the service advertises versions: the newest we speak.
SUPPORTED_VERSIONS = ("2.2", "2.1", "2.0")


@dataclass(frozen=True)
class TimeBudget:
    """Seconds a hook call may take end to end (CRD found-2/6: 5 s, 10 s for appointment-book and cold calls)."""

    default: float = 5.0
    slow_hooks: Mapping[str, float] = field(default_factory=lambda: {APPOINTMENT_BOOK: 10.0})
    cold: float = 10.0

    def seconds(self, hook: str, *, cold: bool) -> float:
        base = self.slow_hooks.get(hook, self.default)
        return max(base, self.cold) if cold else base


@dataclass(frozen=True)
class CrdPayer:
    """One payer's CRD endpoint and our registration there."""

    cds_base_url: str
    identity: CdsClientIdentity
    budget: TimeBudget = field(default_factory=TimeBudget)
    #: Re-run discovery when the cached document is older than this (found-16: at least daily).
    discovery_max_age: float = 86_400.0
    #: ``davinci-crd.configuration`` sent with every call (codes come from the service's discovery).
    configuration: Mapping[str, Any] | None = None
    #: Lifetime of the fhirAuthorization token we ask the EHR for (found-22: SHOULD be at most 30 s).
    token_lifetime: int = DEFAULT_LIFETIME
    #: The sync client keeps listening this long past the budget, in the background, so that a late answer is
    #: still recorded in the ledger (found-7); the caller has had its indeterminate result long before.
    late_answer_grace: float = 10.0

    @property
    def discovery_url(self) -> str:
        return discovery_url(self.cds_base_url)


@dataclass(frozen=True)
class Ehr:
    """Where the chart lives: the base URL the payer may read back (``fhirServer``), a client for our own
    prefetch reads (a real server, or :class:`fhir_pa.fhir.memory.MemoryFhirServer`'s transport), and who mints
    the payer's token."""

    fhir_server: str
    http: httpx.Client | None = None
    async_http: httpx.AsyncClient | None = None
    token_issuer: TokenIssuer | None = None
    #: How our own prefetch reads authenticate to the EHR (flows send prepared requests, so a client's default
    #: headers do not apply).
    auth: httpx.Auth | None = None
    #: False for a chart held only in memory: the payer cannot read back, so no fhirServer is sent.
    reachable: bool = True


@dataclass(frozen=True)
class CrdResult:
    """The answer to one hook call. ``answered`` is False when the payer could not be heard in time (or at
    all); then every order's decision is indeterminate with reason technical."""

    hook: str
    service_id: str | None
    hook_instance: str | None
    decisions: tuple[OrderCoverage, ...]
    cards: tuple[Card, ...]
    answered: bool
    problem: str | None
    elapsed: float
    response: HookResponse | None = None
    request_body: bytes | None = None
    response_body: bytes | None = None
    prefetch_omitted: Mapping[str, str] = field(default_factory=dict)
    service_url: str | None = None
    status_code: int | None = None

    def decision(self, order_ref: str) -> OrderCoverage | None:
        return next((d for d in self.decisions if d.order == order_ref), None)

    def apply_to(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """``order`` (the current version) with the payer's coverage information merged in, and nothing else of
        the payer's copy; unchanged when the payer sent none for it (or was not heard)."""
        ref = f"{order.get('resourceType')}/{order.get('id')}"
        for action in self.response.actions() if self.response is not None else ():
            if action.target == ref and auto_applicable(action):
                return apply_coverage_information(order, action)
        return dict(order)


def _version(service: CdsService) -> str | None:
    """requestedVersion: required when the service offers several (dev-3); the newest both sides speak."""
    if not service.crd_versions:
        return None
    return next((v for v in SUPPORTED_VERSIONS if v in service.crd_versions), None) or service.crd_versions[0]


def _unanswered(hook: str, refs: Sequence[str], problem: str, started: float, *, service: str | None = None,
                instance: str | None = None, request_body: bytes | None = None) -> CrdResult:
    return CrdResult(hook, service, instance, tuple(indeterminate(ref, problem) for ref in refs), (), False,
                     problem, time.monotonic() - started, request_body=request_body)


@dataclass
class _Prepared:
    service: CdsService
    url: str
    body: dict[str, Any]
    content: bytes
    prefetch: PrefetchResult | None


class _CrdCore:
    """What the sync and async clients share: discovery cache, building the call, reading the answer."""

    def __init__(self, payer: CrdPayer, ehr: Ehr, ledger: Ledger | None) -> None:
        self.payer = payer
        self.ehr = ehr
        self.ledger = ledger
        self.discovery: Discovery | None = None
        self.calls = 0

    def log(self, result: CrdResult, context: Mapping[str, Any], started_at: datetime, *, late: bool = False) -> None:
        """Keep the call's bytes in the ledger (found-37); an answer that came after the budget is kept too."""
        if self.ledger is None:
            return
        patient = context.get("patientId")
        problem = "answered after the time budget; not used" if late else result.problem
        try:
            self.ledger.hooks.record(hook=result.hook, hook_instance=result.hook_instance,
                                     service_url=result.service_url,
                                     patient_id=patient if isinstance(patient, str) else None, started_at=started_at,
                                     elapsed_ms=round(result.elapsed * 1000), status_code=result.status_code,
                                     answered=result.answered and not late, problem=problem,
                                     request_body=result.request_body, response_body=result.response_body)
        except FhirPaError as exc:  # the ledger being down must not take the order workflow with it
            log.warning("could not record the %s call in the ledger: %s", result.hook, exc.one_line())

    def fresh(self) -> bool:
        if self.discovery is None:
            return False
        return time.monotonic() - self.discovery.fetched_at < self.payer.discovery_max_age

    def discovery_request(self) -> httpx.Request:
        url = self.payer.discovery_url
        return httpx.Request("GET", url, headers={"Accept": JSON,
                                                  "Authorization": f"Bearer {self.payer.identity.jwt(url)}"})

    def read_discovery(self, response: httpx.Response) -> Discovery:
        if response.status_code != 200:
            raise PayerError(f"CRD discovery at {self.payer.discovery_url} answered HTTP {response.status_code}")
        self.discovery = parse_discovery(response.content, base_url=self.payer.cds_base_url,
                                         fetched_at=time.monotonic(), source="CRD discovery")
        return self.discovery

    def service(self, hook: str) -> CdsService | None:
        return self.discovery.for_hook(hook) if self.discovery is not None else None

    def build(self, service: CdsService, hook: str, context: Mapping[str, Any], prefetch: PrefetchResult | None
              ) -> _Prepared:
        assert self.discovery is not None
        url = self.discovery.url(service)
        authorization = None
        if self.ehr.token_issuer is not None and self.ehr.reachable:
            patient = context.get("patientId")
            token = self.ehr.token_issuer.issue(scopes=scopes_for(service.prefetch),
                                                patient_id=patient if isinstance(patient, str) else None,
                                                lifetime=self.payer.token_lifetime)
            authorization = token.as_json()
        body = hook_request(hook, context, fhir_server=self.ehr.fhir_server if self.ehr.reachable else None,
                            fhir_authorization=authorization,
                            prefetch=dict(prefetch.values) if prefetch is not None else None,
                            requested_version=_version(service), configuration=self.payer.configuration)
        content = json.dumps(body, separators=(",", ":")).encode("utf-8")  # no insignificant whitespace (found-40)
        return _Prepared(service, url, body, content, prefetch)

    def hook_http_request(self, prepared: _Prepared, timeout: float) -> httpx.Request:
        request = httpx.Request("POST", prepared.url, content=prepared.content,
                                headers={"Content-Type": JSON, "Accept": JSON,
                                         "Authorization": f"Bearer {self.payer.identity.jwt(prepared.url)}"})
        request.extensions["timeout"] = httpx.Timeout(max(0.05, timeout)).as_dict()
        return request

    def interpret(self, hook: str, context: Mapping[str, Any], prepared: _Prepared, response: httpx.Response,
                  started: float) -> CrdResult:
        refs = order_refs(hook, context)
        # Appointments are passed whole, so an answer about the ServiceRequest they are based on is matched.
        expected: Sequence[str | Mapping[str, Any]] = context_orders(hook, context) if hook == APPOINTMENT_BOOK \
            else refs
        instance = prepared.body["hookInstance"]
        omitted = dict(prepared.prefetch.omitted) if prepared.prefetch is not None else {}
        if response.status_code != 200:
            problem = f"the CRD service answered HTTP {response.status_code}"
            result = _unanswered(hook, refs, problem, started, service=prepared.service.id, instance=instance,
                                 request_body=prepared.content)
            return replace(result, response_body=response.content, prefetch_omitted=omitted, service_url=prepared.url,
                         status_code=response.status_code)
        parsed = parse_hook_response(response.content, source=f"{hook} response")
        decisions = coverage_decisions(parsed, expected)
        if hook not in PRIMARY_HOOKS:  # supporting hooks may legitimately answer without coverage information
            decisions = tuple(replace(d, issues=tuple(replace(i, severity="warning") if i.rule == "hook-16" else i
                                                      for i in d.issues)) for d in decisions)
        return CrdResult(hook, prepared.service.id, instance, decisions, parsed.cards, True, None,
                         time.monotonic() - started, parsed, prepared.content, response.content, omitted,
                         prepared.url, response.status_code)


def _problem(exc: BaseException) -> str:
    if isinstance(exc, FhirPaError):
        return exc.one_line()
    if isinstance(exc, httpx.TimeoutException):
        return "the CRD service did not answer in time"
    if isinstance(exc, httpx.TransportError):
        return f"the CRD service could not be reached ({type(exc).__name__})"
    return f"the CRD call failed ({type(exc).__name__})"


class CrdClient:
    """Synchronous CRD client for one payer. Thread-safe for concurrent calls."""

    def __init__(self, payer: CrdPayer, ehr: Ehr, *, http: httpx.Client | None = None,
                 ledger: Ledger | None = None) -> None:
        self._core = _CrdCore(payer, ehr, ledger)
        self._owns_http = http is None
        self.http = http or httpx.Client(timeout=payer.budget.cold)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="fhir-pa-crd")

    @property
    def payer(self) -> CrdPayer:
        return self._core.payer

    def discover(self, *, force: bool = False) -> Discovery:
        if force or not self._core.fresh():
            self._core.read_discovery(self.http.send(self._core.discovery_request()))
        assert self._core.discovery is not None
        return self._core.discovery

    def _prefetch(self, service: CdsService, hook: str, context: Mapping[str, Any]) -> PrefetchResult | None:
        if not service.prefetch or self._core.ehr.http is None:
            return None
        user = context.get("userId")
        flow = prefetch_flow(service.prefetch, context, fhir_base=self._core.ehr.fhir_server, hook=hook,
                             user_id=user if isinstance(user, str) else None)
        return run_sync(flow, self._core.ehr.http, self._core.ehr.auth)

    def _run(self, hook: str, context: Mapping[str, Any], started: float, budget: float) -> CrdResult:
        refs = order_refs(hook, context)
        result: CrdResult | None = None
        for attempt in (1, 2):  # the second attempt runs on a fresh discovery (found-17)
            try:
                self.discover(force=attempt == 2)
                service = self._core.service(hook)
                if service is None:
                    return _unanswered(hook, refs, f"the payer offers no {hook} service", started)
                prepared = self._core.build(service, hook, context, self._prefetch(service, hook, context))
                left = budget - (time.monotonic() - started) + self.payer.late_answer_grace
                response = self.http.send(self._core.hook_http_request(prepared, left))
                result = self._core.interpret(hook, context, prepared, response, started)
            except (FhirPaError, httpx.HTTPError) as exc:
                if attempt == 1 and not isinstance(exc, httpx.TimeoutException):
                    log.info("CRD %s call failed (%s); refreshing discovery once", hook, _problem(exc))
                    continue
                return _unanswered(hook, refs, _problem(exc), started)
            if result.answered:
                return result
            log.info("CRD %s: %s; refreshing discovery once", hook, result.problem)
        assert result is not None
        return result

    def call(self, hook: str, context: Mapping[str, Any]) -> CrdResult:
        """One hook call; never blocks past the budget (then: indeterminate, reason technical)."""
        started, started_at = time.monotonic(), datetime.now(UTC)
        budget = self.payer.budget.seconds(hook, cold=self._core.calls == 0 or not self._core.fresh())
        self._core.calls += 1
        future = self._pool.submit(self._run, hook, context, started, budget)
        try:
            result = future.result(timeout=max(0.0, budget - (time.monotonic() - started)))
        except concurrent.futures.TimeoutError:
            if not future.cancel():
                future.add_done_callback(lambda done: self._late(done, context, started_at))
            result = _unanswered(hook, order_refs(hook, context),
                                 f"the CRD service did not answer within {budget:g} s", started)
        self._core.log(result, context, started_at)
        return result

    def _late(self, done: concurrent.futures.Future[CrdResult], context: Mapping[str, Any],
              started_at: datetime) -> None:
        if done.exception() is None and done.result().response_body is not None:
            self._core.log(done.result(), context, started_at, late=True)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncCrdClient:
    """Asynchronous CRD client for one payer; the same behaviour as :class:`CrdClient`."""

    def __init__(self, payer: CrdPayer, ehr: Ehr, *, http: httpx.AsyncClient | None = None,
                 ledger: Ledger | None = None) -> None:
        self._core = _CrdCore(payer, ehr, ledger)
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(timeout=payer.budget.cold)

    @property
    def payer(self) -> CrdPayer:
        return self._core.payer

    async def discover(self, *, force: bool = False) -> Discovery:
        if force or not self._core.fresh():
            self._core.read_discovery(await self.http.send(self._core.discovery_request()))
        assert self._core.discovery is not None
        return self._core.discovery

    async def _prefetch(self, service: CdsService, hook: str, context: Mapping[str, Any]) -> PrefetchResult | None:
        if not service.prefetch or self._core.ehr.async_http is None:
            return None
        user = context.get("userId")
        flow = prefetch_flow(service.prefetch, context, fhir_base=self._core.ehr.fhir_server, hook=hook,
                             user_id=user if isinstance(user, str) else None)
        return await run_async(flow, self._core.ehr.async_http, self._core.ehr.auth)

    async def _run(self, hook: str, context: Mapping[str, Any], started: float, budget: float) -> CrdResult:
        refs = order_refs(hook, context)
        result: CrdResult | None = None
        for attempt in (1, 2):
            try:
                await self.discover(force=attempt == 2)
                service = self._core.service(hook)
                if service is None:
                    return _unanswered(hook, refs, f"the payer offers no {hook} service", started)
                prepared = self._core.build(service, hook, context, await self._prefetch(service, hook, context))
                left = budget - (time.monotonic() - started)
                response = await self.http.send(self._core.hook_http_request(prepared, left))
                result = self._core.interpret(hook, context, prepared, response, started)
            except (FhirPaError, httpx.HTTPError) as exc:
                if attempt == 1 and not isinstance(exc, httpx.TimeoutException):
                    continue
                return _unanswered(hook, refs, _problem(exc), started)
            if result.answered:
                return result
        assert result is not None
        return result

    async def call(self, hook: str, context: Mapping[str, Any]) -> CrdResult:
        started, started_at = time.monotonic(), datetime.now(UTC)
        budget = self.payer.budget.seconds(hook, cold=self._core.calls == 0 or not self._core.fresh())
        self._core.calls += 1
        try:
            result = await asyncio.wait_for(self._run(hook, context, started, budget), timeout=budget)
        except TimeoutError:
            result = _unanswered(hook, order_refs(hook, context),
                                 f"the CRD service did not answer within {budget:g} s", started)
        await asyncio.to_thread(self._core.log, result, context, started_at)
        return result

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["AsyncCrdClient", "CrdClient", "CrdPayer", "CrdResult", "Ehr", "TimeBudget"]

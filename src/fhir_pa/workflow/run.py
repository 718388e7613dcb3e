"""One call per order: CRD, then DTR when the payer wants documentation, then PAS, then tracking to the final
decision; sync (:class:`Workflow`) and async (:class:`AsyncWorkflow`).

Each order's PAS request is recorded in the ledger before it is sent, and an order the ledger already holds goes
straight back to PAS (its stored bytes are resent or its stored decision returned), so running an order again,
after a crash or in a second batch, never submits it twice.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Self

from fhir_pa.crd.client import AsyncCrdClient, CrdClient, Ehr
from fhir_pa.crd.hooks import ORDER_SIGN
from fhir_pa.dtr.client import AsyncDtrClient, DtrClient
from fhir_pa.dtr.package import PackageSet, parameters_from_handoff
from fhir_pa.errors import ConfigurationError, FhirPaError
from fhir_pa.fhir.flow import run_async, run_sync
from fhir_pa.pas.order import PriorAuthOrder
from fhir_pa.pas.submit import AsyncPasClient, PasClient, SubmitResult
from fhir_pa.pas.track import TrackResult
from fhir_pa.workflow.core import (
    AsyncFormHook,
    CrdOutcome,
    Documents,
    FormHook,
    FormTask,
    WorkflowCore,
    WorkflowSettings,
)
from fhir_pa.workflow.model import WorkflowOrder, as_workflow_order
from fhir_pa.workflow.result import WorkflowResult

Json = dict[str, Any]


def _ehr_for(crd: CrdClient | AsyncCrdClient | None, ehr: Ehr | None) -> Ehr | None:
    return ehr if ehr is not None else crd._core.ehr if crd is not None else None


class Workflow:
    """The whole path for one order at a time, blocking. ``complete_form`` is the person who finishes a form the
    chart could not complete (return None to hold the order); without it ``settings.documentation`` decides."""

    def __init__(self, pas: PasClient, *, crd: CrdClient | None = None, dtr: DtrClient | None = None,
                 ehr: Ehr | None = None, settings: WorkflowSettings | None = None,
                 complete_form: FormHook | None = None) -> None:
        self.pas, self.crd, self.dtr = pas, crd, dtr
        self.ehr = _ehr_for(crd, ehr)
        self.settings = settings or WorkflowSettings()
        self.complete_form = complete_form
        self._core = WorkflowCore(pas.payer.base, pas.ledger, self.settings)

    def run(self, item: WorkflowOrder | PriorAuthOrder, *, track: bool | None = None) -> WorkflowResult:
        """Take ``item`` as far as it goes: final decision, no auth needed, held for documentation, or a typed
        error (in the result, never raised; a bug still raises)."""
        item, core = as_workflow_order(item), self._core
        crd: CrdOutcome | None = None
        docs = Documents()
        try:
            order = item.order
            if core.existing(order) is None and self.crd is not None and item.ehr is not None:
                crd = self._ask_crd(item)
                if not crd.submit:
                    return core.no_auth(item, crd)
                order = crd.order
                if crd.handoffs:
                    docs = self._document(item, crd)
                    if docs.held:
                        return core.held(item, crd, docs.forms, docs.held)
                    order = docs.attach(order)
            started = time.perf_counter()
            submitted = self.pas.submit(order)
            core.submitted(item, submitted, started)
            result = core.result(item, submitted.record_id, submitted.decision, sent=submitted.sent, crd=crd,
                                 forms=docs.forms)
            if result.outcome == "pended" and (self.settings.track if track is None else track):
                return self.follow(result)
            return result
        except FhirPaError as exc:
            return core.failed(item, exc, crd=crd, forms=docs.forms)

    def follow(self, result: WorkflowResult) -> WorkflowResult:
        """Track a pended result to its final decision (or ``settings.track_timeout``)."""
        if result.record is None:
            return result
        started = time.perf_counter()
        try:
            tracked = self.pas.track(result.record.id, timeout=self.settings.track_timeout)
        except FhirPaError as exc:
            return self._core.track_failed(result, exc)
        return self._core.tracked(result, tracked, started)

    def _ask_crd(self, item: WorkflowOrder) -> CrdOutcome:
        assert self.crd is not None and self.ehr is not None
        core, started = self._core, time.perf_counter()
        drafts = core.drafts(item)
        answer = self.crd.call(ORDER_SIGN, core.crd_context(item, drafts, self.ehr.fhir_server))
        return core.after_crd(item, drafts, answer, started)

    def _document(self, item: WorkflowOrder, crd: CrdOutcome) -> Documents:
        core, started = self._core, time.perf_counter()
        if self.dtr is None or self.ehr is None or self.ehr.http is None:
            raise ConfigurationError("the payer asks for documentation, but no DTR client and EHR client are set up",
                                     path="dtr")
        chart = run_sync(core.chart_flow(self.ehr.fhir_server, item), self.ehr.http, self.ehr.auth)
        docs = Documents()
        for handoff, draft in crd.handoffs:
            coverage = core.coverage_of(chart, item, handoff)
            found: PackageSet = self.dtr.packages(parameters_from_handoff(handoff, coverage, [draft]))
            for package in found.packages:
                form = core.fill(item, package, chart, draft, coverage)
                answered: Json | None = form.response
                if self.complete_form is not None and form.missing:
                    given = self.complete_form(FormTask(item.order_id, package, form.response, form.missing))
                    answered = dict(given) if given is not None else None
                core.settle(item, docs, form, answered, coverage, draft, person=self.complete_form is not None)
        core.dtr_done(item, docs, started)
        return docs

    def close(self) -> None:
        """Nothing of its own to close: the clients passed in belong to the caller."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncWorkflow:
    """The async twin of :class:`Workflow` (the batch runs many of these at once)."""

    def __init__(self, pas: AsyncPasClient, *, crd: AsyncCrdClient | None = None, dtr: AsyncDtrClient | None = None,
                 ehr: Ehr | None = None, settings: WorkflowSettings | None = None,
                 complete_form: AsyncFormHook | None = None) -> None:
        self.pas, self.crd, self.dtr = pas, crd, dtr
        self.ehr = _ehr_for(crd, ehr)
        self.settings = settings or WorkflowSettings()
        self.complete_form = complete_form
        self._core = WorkflowCore(pas.payer.base, pas.ledger, self.settings)

    async def run(self, item: WorkflowOrder | PriorAuthOrder, *, track: bool | None = None) -> WorkflowResult:
        """Async :meth:`Workflow.run`."""
        item, core = as_workflow_order(item), self._core
        crd: CrdOutcome | None = None
        docs = Documents()
        try:
            order = item.order
            if core.existing(order) is None and self.crd is not None and item.ehr is not None:
                crd = await self._ask_crd(item)
                if not crd.submit:
                    return core.no_auth(item, crd)
                order = crd.order
                if crd.handoffs:
                    docs = await self._document(item, crd)
                    if docs.held:
                        return core.held(item, crd, docs.forms, docs.held)
                    order = docs.attach(order)
            started = time.perf_counter()
            submitted: SubmitResult = await self.pas.submit(order)
            core.submitted(item, submitted, started)
            result = core.result(item, submitted.record_id, submitted.decision, sent=submitted.sent, crd=crd,
                                 forms=docs.forms)
            if result.outcome == "pended" and (self.settings.track if track is None else track):
                return await self.follow(result)
            return result
        except FhirPaError as exc:
            return core.failed(item, exc, crd=crd, forms=docs.forms)

    async def follow(self, result: WorkflowResult) -> WorkflowResult:
        """Async :meth:`Workflow.follow`."""
        if result.record is None:
            return result
        started = time.perf_counter()
        try:
            tracked: TrackResult = await self.pas.track(result.record.id, timeout=self.settings.track_timeout)
        except FhirPaError as exc:
            return self._core.track_failed(result, exc)
        return self._core.tracked(result, tracked, started)

    async def _ask_crd(self, item: WorkflowOrder) -> CrdOutcome:
        assert self.crd is not None and self.ehr is not None
        core, started = self._core, time.perf_counter()
        drafts = core.drafts(item)
        answer = await self.crd.call(ORDER_SIGN, core.crd_context(item, drafts, self.ehr.fhir_server))
        return core.after_crd(item, drafts, answer, started)

    async def _document(self, item: WorkflowOrder, crd: CrdOutcome) -> Documents:
        core, started = self._core, time.perf_counter()
        if self.dtr is None or self.ehr is None or self.ehr.async_http is None:
            raise ConfigurationError("the payer asks for documentation, but no DTR client and async EHR client are "
                                     "set up", path="dtr")
        chart = await run_async(core.chart_flow(self.ehr.fhir_server, item), self.ehr.async_http, self.ehr.auth)
        docs = Documents()
        for handoff, draft in crd.handoffs:
            coverage = core.coverage_of(chart, item, handoff)
            found = await self.dtr.packages(parameters_from_handoff(handoff, coverage, [draft]))
            for package in found.packages:
                form = core.fill(item, package, chart, draft, coverage)
                answered: Json | None = form.response
                if self.complete_form is not None and form.missing:
                    given = await self.complete_form(FormTask(item.order_id, package, form.response, form.missing))
                    answered = dict(given) if given is not None else None
                core.settle(item, docs, form, answered, coverage, draft, person=self.complete_form is not None)
        core.dtr_done(item, docs, started)
        return docs

    async def aclose(self) -> None:
        """Nothing of its own to close: the clients passed in belong to the caller."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

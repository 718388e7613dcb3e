"""The sandbox payer as an ASGI application (Starlette): routes and the state behind them.

- ``GET /fhir/.well-known/smart-configuration``: SMART discovery
- ``POST /auth/token``: client_credentials grant with a private_key_jwt client assertion
- ``GET /fhir/metadata``: CapabilityStatement
- ``POST /fhir/Claim/$submit`` (``system/Claim.c``): PAS request Bundle in, PAS response Bundle out. A pended
  item (A4) is decided later by its rule (``then`` after ``after_seconds`` times ``pend_delay_scale``): the
  stored ClaimResponse (same id) gets the new review action, ``meta.versionId`` + 1 and ``lastUpdated``, and
  matching Subscriptions are notified. A Claim Update (``Claim.related`` prior) updates or cancels the case
  it names (:mod:`fhir_pa_sandbox.submit`).
- ``GET /fhir/ClaimResponse/{id}`` (``system/ClaimResponse.r``): the current version
- ``GET /fhir/ClaimResponse?identifier=|request.identifier=|_id=`` (``.s`` or ``.r``): searchset Bundle
  (:mod:`fhir_pa_sandbox.search`)
- ``POST /fhir/Claim/$inquire`` (``Claim.c`` or ``ClaimResponse.r``/``.s``): Parameters of Inquiry Response
  Bundles, 404 when nothing matches (:mod:`fhir_pa_sandbox.inquire`)
- ``POST|GET /fhir/Subscription``, ``GET|PUT|DELETE /fhir/Subscription/{id}`` (``system/Subscription.*``):
  PAS Subscriptions with handshake and rest-hook event notifications; a failed delivery sets the
  Subscription to ``error`` and the event is lost (clients re-request and poll)
  (:mod:`fhir_pa_sandbox.subscription_api`, :mod:`fhir_pa_sandbox.delivery`, :mod:`fhir_pa_sandbox.notify`)
- ``GET /crd/cds-services``, ``POST /crd/cds-services/{id}``: the CRD service (CDS Hooks discovery and hooks,
  client JWT verified; :mod:`fhir_pa_sandbox.crd_service`)
- ``POST /fhir/Questionnaire/$questionnaire-package``, ``$next-question``, ``$log-questionnaire-errors``
  (``system/Questionnaire.r`` or ``Claim.c``): DTR packages of the sandbox's own forms (``data/dtr``), the
  adaptive form's rounds, and error reports (:mod:`fhir_pa_sandbox.dtr_service`)
- ``GET /ehr/fhir/...``: a small EHR with synthetic patients, read by the CRD client's prefetch and by the CRD
  service with the ``fhirAuthorization`` token (:mod:`fhir_pa_sandbox.ehr`)
- ``GET /_sandbox/stats``, ``GET|POST /_sandbox/faults``, ``POST /_sandbox/clients``,
  ``POST /_sandbox/decide-pending``, ``POST /_sandbox/ehr-token``: test knobs (loopback only;
  :mod:`fhir_pa_sandbox.admin`, :mod:`fhir_pa_sandbox.knobs`)

The app's lifespan starts and stops the scheduler thread that runs pended decisions and deliveries. One
middleware (:class:`fhir_pa_sandbox.guard.AnswerFaults`) delays or replaces the answers the fault knobs
``slow_rate`` and ``error_after_rate`` picked, after the handler did its work.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fhir_pa_sandbox import (
    admin,
    capability,
    crd_service,
    dtr_service,
    ehr,
    inquire,
    oauth,
    search,
    submit,
    subscription_api,
)
from fhir_pa_sandbox.clients import ClientRegistry, load_clients
from fhir_pa_sandbox.config import SandboxConfig
from fhir_pa_sandbox.guard import AnswerFaults
from fhir_pa_sandbox.outcome import refuse
from fhir_pa_sandbox.rules import load_rules
from fhir_pa_sandbox.state import SandboxState
from fhir_pa_sandbox.tokens import TokenStore


async def _fhir_not_found(request: Request) -> Response:
    return refuse(404, "not-supported", f"this payer does not offer {request.method} {request.url.path}")


def create_state(config: SandboxConfig) -> SandboxState:
    """Load the rules and client files named by ``config`` (ConfigurationError if either is wrong)."""
    return SandboxState(config=config, rules=load_rules(config.rules_path),
                        clients=ClientRegistry(load_clients(config.clients_path)),
                        tokens=TokenStore(config.clock))


def create_app(config: SandboxConfig | None = None, *, state: SandboxState | None = None) -> Starlette:
    """The sandbox payer app; its :class:`SandboxState` is ``app.state.sandbox``."""
    routes = [
        Route("/fhir/.well-known/smart-configuration", oauth.smart_configuration, methods=["GET"]),
        Route("/auth/token", oauth.token_endpoint, methods=["POST"]),
        Route("/fhir/metadata", capability.metadata, methods=["GET"]),
        Route("/fhir/Claim/$submit", submit.submit, methods=["POST"]),
        Route("/fhir/Claim/$inquire", inquire.inquire, methods=["POST"]),
        Route("/fhir/ClaimResponse", search.search_claim_responses, methods=["GET"]),
        Route("/fhir/ClaimResponse/{id:str}", submit.read_claim_response, methods=["GET"]),
        Route("/fhir/Subscription", subscription_api.create, methods=["POST"]),
        Route("/fhir/Subscription", subscription_api.search, methods=["GET"]),
        Route("/fhir/Subscription/{id:str}", subscription_api.read, methods=["GET"]),
        Route("/fhir/Subscription/{id:str}", subscription_api.update, methods=["PUT"]),
        Route("/fhir/Subscription/{id:str}", subscription_api.delete, methods=["DELETE"]),
        Route("/fhir/Questionnaire/$questionnaire-package", dtr_service.questionnaire_package, methods=["POST"]),
        Route("/fhir/Questionnaire/$next-question", dtr_service.next_question, methods=["POST"]),
        Route("/fhir/Questionnaire/$log-questionnaire-errors", dtr_service.log_questionnaire_errors,
              methods=["POST"]),
        Route("/fhir/{rest:path}", _fhir_not_found,
              methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route(crd_service.CRD_PATH, crd_service.discovery, methods=["GET"]),
        Route(crd_service.CRD_PATH + "/{id:str}", crd_service.hook_call, methods=["POST"]),
        Route(ehr.EHR_PATH + "/{rest:path}", ehr.ehr_fhir, methods=["GET"]),
        Route("/_sandbox/stats", admin.stats, methods=["GET"]),
        Route("/_sandbox/faults", admin.faults, methods=["GET", "POST"]),
        Route("/_sandbox/clients", admin.register_client, methods=["POST"]),
        Route("/_sandbox/decide-pending", admin.decide_pending, methods=["POST"]),
        Route("/_sandbox/ehr-token", admin.ehr_token, methods=["POST"]),
    ]
    sandbox = state or create_state(config or SandboxConfig())

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        sandbox.start()
        try:
            yield
        finally:
            sandbox.stop()

    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(AnswerFaults)])
    app.state.sandbox = sandbox
    return app

"""Everything one running sandbox holds, in one object the request handlers reach via ``request.app``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from starlette.requests import Request

from fhir_pa.auth.verify import JtiCache
from fhir_pa_sandbox.cases import CaseStore
from fhir_pa_sandbox.clients import ClientRegistry
from fhir_pa_sandbox.config import SandboxConfig
from fhir_pa_sandbox.crd_rules import CrdRules, load_crd_rules
from fhir_pa_sandbox.delivery import Deliverer
from fhir_pa_sandbox.dtr_content import DtrContent, LoggedErrors, load_dtr_content
from fhir_pa_sandbox.knobs import FaultKnobs
from fhir_pa_sandbox.rules import RulesTable
from fhir_pa_sandbox.scheduler import Scheduler
from fhir_pa_sandbox.stats import Stats
from fhir_pa_sandbox.store import SubmissionStore
from fhir_pa_sandbox.subscriptions import SubscriptionStore
from fhir_pa_sandbox.tokens import TokenStore

if TYPE_CHECKING:
    from fhir_pa_sandbox.ehr import SandboxEhr


@dataclass
class SandboxState:
    config: SandboxConfig
    rules: RulesTable
    clients: ClientRegistry
    tokens: TokenStore
    store: SubmissionStore = field(default_factory=SubmissionStore)
    stats: Stats = field(default_factory=Stats)
    faults: FaultKnobs = field(default_factory=FaultKnobs)
    jti_cache: JtiCache = field(default_factory=JtiCache)
    cases: CaseStore = field(default_factory=CaseStore)
    subscriptions: SubscriptionStore = field(default_factory=SubscriptionStore)
    #: Runs pended decisions and notification deliveries; started and stopped with the app (lifespan).
    scheduler: Scheduler = field(default_factory=Scheduler)
    deliverer: Deliverer = field(init=False)
    #: CRD: the decision rules, the discovery document, and the small EHR the CRD calls read from.
    crd_rules: CrdRules = field(default_factory=load_crd_rules)
    crd_services: dict[str, Any] = field(init=False)
    ehr: SandboxEhr = field(init=False)
    #: DTR: the forms ``$questionnaire-package`` serves, and what clients reported via ``$log-questionnaire-errors``.
    dtr: DtrContent = field(default_factory=load_dtr_content)
    dtr_errors: list[LoggedErrors] = field(default_factory=list)

    def __post_init__(self) -> None:
        from fhir_pa_sandbox.crd_service import load_services
        from fhir_pa_sandbox.ehr import SandboxEhr

        self.deliverer = Deliverer(self.scheduler, self.faults, self.stats)
        self.crd_services = load_services()
        self.ehr = SandboxEhr(clock=self.config.clock)

    def apply_faults(self, command: Any) -> None:
        """Apply a fault command (:mod:`fhir_pa_sandbox.knobs`; :class:`~fhir_pa_sandbox.knobs.KnobError` if
        malformed), including its one-off actions: ``expire_tokens`` ends every token issued so far."""
        if self.faults.apply(command):
            self.expire_tokens()

    def expire_tokens(self) -> None:
        """Every access token issued so far stops working now (counted in the stats)."""
        expired = self.tokens.expire_all()
        self.stats.count("token_expiries")
        self.stats.count("tokens_expired", times=expired)

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        """Stop the later work: queued decisions and notifications are dropped, nothing outlives the server."""
        self.scheduler.stop()
        self.deliverer.close()


def state_of(request: Request) -> SandboxState:
    return cast(SandboxState, request.app.state.sandbox)


def base_url(request: Request) -> str:
    """This server's base URL as the client addressed it (scheme and Host of the request)."""
    return str(request.base_url).rstrip("/")


def fhir_base(request: Request) -> str:
    return f"{base_url(request)}/fhir"


def token_url(request: Request) -> str:
    """The exact token URL: what discovery advertises and what a client assertion's ``aud`` must be."""
    return f"{base_url(request)}/auth/token"

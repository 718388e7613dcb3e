"""The clients a batch (or any many-orders caller) needs, built from plain settings and closed together.

One async HTTP client (with a connection pool sized to the concurrency) and one SMART token serve PAS and DTR at
the payer; the CRD client signs its own CDS Hooks JWTs with the same key and reads the EHR for prefetch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from fhir_pa.auth.bearer import BearerToken
from fhir_pa.auth.keys import load_signing_key
from fhir_pa.config import PayerConfig
from fhir_pa.crd.authorization import StaticTokenIssuer
from fhir_pa.crd.client import AsyncCrdClient, CrdPayer, Ehr
from fhir_pa.crd.identity import CdsClientIdentity
from fhir_pa.dtr.client import AsyncDtrClient
from fhir_pa.fhir.datasource import check_base_url
from fhir_pa.ledger.store import Ledger
from fhir_pa.pas.submit import AsyncPasClient
from fhir_pa.pas.submit_core import make_auth
from fhir_pa.workflow.core import WorkflowSettings
from fhir_pa.workflow.run import AsyncWorkflow


@dataclass(frozen=True)
class CrdConnection:
    """Where CRD happens: the payer's CDS Hooks base, our client id there, and the EHR the chart lives in."""

    cds_base_url: str
    ehr_base_url: str
    #: Our ``iss`` in CDS Hooks client JWTs (default: the PAS client id).
    issuer: str | None = None
    #: A bearer token for the EHR's FHIR API: our own prefetch and chart reads, and the payer's fhirAuthorization.
    ehr_token: str | None = None
    ehr_scope: str = "user/*.rs"
    #: The user the EHR token acts for (fhirAuthorization ``subject``).
    ehr_subject: str = "fhir-pa-batch"


@asynccontextmanager
async def workflow_session(payer: PayerConfig, ledger: Ledger, *, settings: WorkflowSettings,
                           crd: CrdConnection | None = None, dtr: bool = True,
                           connections: int = 16) -> AsyncIterator[AsyncWorkflow]:
    """An :class:`AsyncWorkflow` on fresh clients; everything is closed on the way out."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    http = httpx.AsyncClient(timeout=payer.timeout, limits=limits)
    ehr_http: httpx.AsyncClient | None = None
    crd_client: AsyncCrdClient | None = None
    try:
        auth = make_auth(payer)
        pas = AsyncPasClient(payer, ledger=ledger, http=http, auth=auth)
        ehr: Ehr | None = None
        if crd is not None:
            key = load_signing_key(payer.key_path, kid=payer.key_id)
            token = crd.ehr_token
            ehr_http = httpx.AsyncClient(timeout=payer.timeout, limits=limits,
                                         headers={"Accept": "application/fhir+json"})
            issuer = StaticTokenIssuer(token=token, scope=crd.ehr_scope, subject=crd.ehr_subject) \
                if token else None
            ehr = Ehr(fhir_server=check_base_url(crd.ehr_base_url), async_http=ehr_http,
                      auth=BearerToken(token) if token else None, token_issuer=issuer)
            crd_payer = CrdPayer(cds_base_url=check_base_url(crd.cds_base_url),
                                 identity=CdsClientIdentity(key, crd.issuer or payer.client_id))
            crd_client = AsyncCrdClient(crd_payer, ehr, http=http, ledger=ledger)
        dtr_client = AsyncDtrClient(payer, http=http, auth=auth) if dtr and crd is not None else None
        yield AsyncWorkflow(pas, crd=crd_client, dtr=dtr_client, ehr=ehr, settings=settings)
    finally:
        await http.aclose()
        if ehr_http is not None:
            await ehr_http.aclose()

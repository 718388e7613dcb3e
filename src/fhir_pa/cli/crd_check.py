"""``fhir-pa crd check ORDER.json --payer URL``: ask a payer's CRD service about an order, as the EHR would.

ORDER.json is a FHIR request resource (ServiceRequest, DeviceRequest, ...) or a Bundle holding the draft orders and,
optionally, the chart (Patient, Coverage, Encounter, practitioners...). The prefetch is filled from ``--ehr``
(a FHIR server read with ``--ehr-token``, which is also handed to the payer as fhirAuthorization) or, without it,
from the chart in memory (``--chart`` or the Bundle itself; the payer then cannot read back).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from fhir_pa.auth.bearer import BearerToken
from fhir_pa.auth.keys import load_signing_key
from fhir_pa.cli.crd import render
from fhir_pa.cli.options import DEFAULT_LEDGER, LedgerPath, open_ledger
from fhir_pa.crd.authorization import StaticTokenIssuer
from fhir_pa.crd.client import CrdClient, CrdPayer, CrdResult, Ehr, TimeBudget
from fhir_pa.crd.explain import explain_json
from fhir_pa.crd.hooks import ORDER_SELECT, ORDER_SIGN, ORDER_TYPES, order_select_context, order_sign_context
from fhir_pa.crd.identity import CdsClientIdentity
from fhir_pa.errors import InputError
from fhir_pa.fhir.memory import MemoryFhirServer

IN_MEMORY_BASE = "http://ehr.local/fhir"


def register(app: typer.Typer) -> None:
    app.command("check")(check)


def _resources(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not JSON: {exc.msg} at line {exc.lineno}", path="$") from None
    if not isinstance(data, dict) or "resourceType" not in data:
        raise InputError(f"{path} is not a FHIR resource", path="$.resourceType")
    if data["resourceType"] != "Bundle":
        return [data]
    return [e["resource"] for e in data.get("entry", []) if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def _reference_id(order: dict[str, Any], element: str, kind: str) -> str | None:
    reference = (order.get(element) or {}).get("reference")
    if isinstance(reference, str) and reference.startswith(f"{kind}/"):
        return reference.split("/", 1)[1]
    return None


def result_json(result: CrdResult) -> dict[str, Any]:
    view: dict[str, Any] = {"hook": result.hook, "service": result.service_id, "hook_instance": result.hook_instance,
                            "answered": result.answered, "problem": result.problem,
                            "elapsed_ms": round(result.elapsed * 1000),
                            "prefetch_omitted": dict(result.prefetch_omitted)}
    if result.response is not None:
        view.update(explain_json(result.response, result.decisions))
    else:
        view["orders"] = [{"order": d.order, "covered": d.covered, "pa_needed": d.pa_needed,
                           "doc_needed": list(d.doc_needed), "questionnaires": list(d.questionnaires)}
                          for d in result.decisions]
        view["cards"] = []
    return view


def check(
    order_file: Annotated[Path, typer.Argument(help="A FHIR order, or a Bundle of draft orders (and chart).")],
    payer: Annotated[str, typer.Option("--payer", envvar="FHIR_PA_CRD_PAYER",
                                       help="The payer's CDS Hooks base (…/cds-services).")],
    key: Annotated[Path, typer.Option("--key", envvar="FHIR_PA_KEY", help="Private key that signs our client JWT.")],
    issuer: Annotated[str, typer.Option("--iss", envvar="FHIR_PA_CRD_ISS",
                                        help="Our issuer, as registered at the payer.")],
    hook: Annotated[str, typer.Option("--hook", help="order-sign or order-select.")] = ORDER_SIGN,
    user: Annotated[str | None, typer.Option("--user", help="userId (Practitioner/x or PractitionerRole/x); "
                                                            "default: the order's requester.")] = None,
    patient: Annotated[str | None, typer.Option("--patient", help="patientId; default: the order's subject.")] = None,
    encounter: Annotated[str | None, typer.Option("--encounter", help="encounterId, if any.")] = None,
    ehr: Annotated[str | None, typer.Option("--ehr", envvar="FHIR_PA_EHR", help="Our FHIR server base.")] = None,
    ehr_token: Annotated[str | None, typer.Option("--ehr-token", envvar="FHIR_PA_EHR_TOKEN",
                                                  help="Bearer token for --ehr (also given to the payer).")] = None,
    ehr_scope: Annotated[str, typer.Option("--ehr-scope", help="What --ehr-token allows.")] = "user/*.rs",
    subject: Annotated[str, typer.Option("--subject", help="The payer's client id at our EHR.")] = "crd-service",
    chart: Annotated[Path | None, typer.Option("--chart", help="Chart Bundle for an in-memory EHR.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Time budget in seconds (default 5, 10 cold).")] = 0,
    ledger: LedgerPath = DEFAULT_LEDGER,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Call the payer's CRD service for an order and print the coverage decision per order and the cards."""
    resources = _resources(order_file)
    orders = [r for r in resources if r.get("resourceType") in ORDER_TYPES]
    if not orders:
        raise InputError(f"{order_file} holds no order ({', '.join(ORDER_TYPES)})", path="$")
    first = orders[0]
    patient_id = patient or _reference_id(first, "subject", "Patient")
    user_id = user or (first.get("requester") or {}).get("reference")
    if not patient_id or not isinstance(user_id, str):
        raise InputError("give --patient and --user, or an order with subject and requester", path="$.subject")
    budget = TimeBudget(default=timeout, cold=timeout) if timeout > 0 else TimeBudget()
    identity = CdsClientIdentity(load_signing_key(key), issuer)
    if ehr:
        connection = Ehr(fhir_server=ehr, http=httpx.Client(timeout=budget.cold),
                         auth=BearerToken(ehr_token) if ehr_token else None,
                         token_issuer=StaticTokenIssuer(ehr_token, ehr_scope, subject) if ehr_token else None)
    else:
        store = MemoryFhirServer([r for r in resources if r.get("resourceType") not in ORDER_TYPES],
                                 base_url=IN_MEMORY_BASE)
        if chart is not None:
            store.add_bundle(json.loads(chart.read_text(encoding="utf-8")))
        connection = Ehr(fhir_server=IN_MEMORY_BASE, http=httpx.Client(transport=store.transport()),
                         reachable=False)
    if hook == ORDER_SELECT:
        context = order_select_context(user_id=user_id, patient_id=patient_id, draft_orders=orders,
                                       selections=[f"{o['resourceType']}/{o['id']}" for o in orders],
                                       fhir_server=connection.fhir_server, encounter_id=encounter)
    elif hook == ORDER_SIGN:
        context = order_sign_context(user_id=user_id, patient_id=patient_id, draft_orders=orders,
                                     fhir_server=connection.fhir_server, encounter_id=encounter)
    else:
        raise InputError(f"crd check runs order-sign or order-select, not {hook!r}", path="--hook")
    records = open_ledger(ledger)
    # A command ends with its answer: no background wait for a late one (late_answer_grace=0).
    config = CrdPayer(cds_base_url=payer, identity=identity, budget=budget, late_answer_grace=0.0)
    try:
        with CrdClient(config, connection, ledger=records) as client:
            result = client.call(hook, context)
    finally:
        if connection.http is not None:
            connection.http.close()
        records.close()
    if as_json:
        typer.echo(json.dumps(result_json(result), indent=2))
    else:
        console = Console(width=max(Console().width, 140))
        if result.response is not None:
            render(result.response, result.decisions, console)
        else:
            console.print(f"no answer from the payer: {result.problem}; every order is indeterminate")
    if not result.answered:
        raise typer.Exit(7)

"""The sandbox payer's DTR operations (notes/dtr.md §1.3, §1.5, §1.6); scope ``system/Questionnaire.r`` or
``system/Claim.c``, behind the same fault knobs as every FHIR call (:func:`fhir_pa_sandbox.guard.gate`).

- ``POST /fhir/Questionnaire/$questionnaire-package``: Parameters ``coverage`` (1..1 Coverage), ``order`` (0..*),
  ``questionnaire`` (0..* canonical), ``context`` (0..1 string), ``changedsince`` (0..1 instant); dtr-1 needs one
  of order/questionnaire/context. Forms come from the requested canonicals when given, else from the orders'
  CPT/HCPCS codes through ``data/crd_rules.json``. Answer: Parameters with one ``packagebundle`` per form
  (Questionnaire first, a draft QuestionnaireResponse with qr-coverage, qr-context and intendedUse, its Libraries
  and expanded ValueSets) and an ``outcome`` for unknown canonicals or orders without forms; forms unchanged since
  ``changedsince`` are left out. A Coverage whose member id the CRD rules' ``member_pattern`` does not know is
  refused (400, like any bad coverage).
- ``POST /fhir/Questionnaire/$next-question``: Parameters ``questionnaire-response`` (or 2.1's ``-in``) → ``return``
  (or ``-out``): the adaptive home oxygen form, one round of questions per call; after the last round the QR is
  ``completed`` and carries a CRD coverage-information extension.
- ``POST /fhir/Questionnaire/$log-questionnaire-errors``: ``questionnaire`` (1..* canonical) and
  ``operationOutcome`` (1..*) are kept in ``state.dtr_errors``; answer 200 OperationOutcome (information).

Bad input is 400 with an OperationOutcome whose issue names the parameter.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fhir_pa_sandbox.body import read_resource
from fhir_pa_sandbox.crd_decide import CRD_TEMP, EXT_COVERAGE_INFORMATION, billing_codings
from fhir_pa_sandbox.dtr_content import ADAPTIVE, Form, LoggedErrors, walk_items
from fhir_pa_sandbox.guard import gate
from fhir_pa_sandbox.outcome import OutcomeIssue, fhir_response, operation_outcome, outcome_response
from fhir_pa_sandbox.state import SandboxState, fhir_base, state_of

Json = dict[str, Any]
DTR = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition"
QR_COVERAGE = f"{DTR}/qr-coverage"
QR_CONTEXT = f"{DTR}/qr-context"
INTENDED_USE = f"{DTR}/intendedUse"
ORDER_TYPES = frozenset({"Appointment", "Encounter", "CommunicationRequest", "DeviceRequest", "MedicationRequest",
                         "NutritionOrder", "ServiceRequest", "SupplyRequest", "VisionPrescription"})
CANONICAL_KEYS = ("valueCanonical", "valueUri", "valueUrl", "valueString")
ADAPTIVE_ID = "adaptive"


def _where(name: str) -> str:
    return f"Parameters.parameter.where(name='{name}')"


def _bad(name: str, message: str, code: str = "invalid", rule: str | None = None) -> Response:
    return outcome_response(400, OutcomeIssue(code, message, _where(name), rule=rule))


def _parts(body: Mapping[str, Any]) -> list[Json]:
    return [p for p in body.get("parameter") or [] if isinstance(p, dict)]


def _named(body: Mapping[str, Any], *names: str) -> list[Json]:
    return [p for p in _parts(body) if p.get("name") in names]


def _canonical(part: Mapping[str, Any]) -> str | None:
    return next((part[k] for k in CANONICAL_KEYS if isinstance(part.get(k), str) and part[k]), None)


async def _authorized_body(request: Request, operation: str) -> tuple[SandboxState, Mapping[str, Any]] | Response:
    token = await gate(request, "Questionnaire", "r", ("Claim", "c"))
    if isinstance(token, Response):
        return token
    state = state_of(request)
    body = await read_resource(request, state, "Parameters", f"{operation} takes a Parameters resource")
    return body if isinstance(body, Response) else (state, body)


# --- $questionnaire-package -------------------------------------------------------------------------


@dataclass
class PackageRequest:
    coverage: Json
    orders: list[Json]
    questionnaires: list[str]
    context: str | None
    changed_since: datetime | None


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str) or "T" not in text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _package_request(body: Mapping[str, Any]) -> PackageRequest | Response:
    coverages = _named(body, "coverage")
    if not coverages:
        return _bad("coverage", "coverage is required: the patient's Coverage with this payer (1..1)", "required")
    if len(coverages) > 1:
        return _bad("coverage", "coverage is 1..1 in DTR 2.2: call once per payer with one Coverage")
    coverage = coverages[0].get("resource")
    if not isinstance(coverage, dict) or coverage.get("resourceType") != "Coverage":
        return _bad("coverage", "coverage must carry a Coverage resource")
    beneficiary = (coverage.get("beneficiary") or {}).get("reference")
    if not coverage.get("id") or not isinstance(beneficiary, str) or not beneficiary.startswith("Patient/"):
        return _bad("coverage", "coverage needs an id and beneficiary.reference Patient/{id} (the QR's subject)")
    orders = []
    for part in _named(body, "order"):
        order = part.get("resource")
        if not isinstance(order, dict) or order.get("resourceType") not in ORDER_TYPES:
            return _bad("order", f"order must carry one of {', '.join(sorted(ORDER_TYPES))}")
        orders.append(order)
    questionnaires = []
    for part in _named(body, "questionnaire"):
        value = _canonical(part)
        if value is None:
            return _bad("questionnaire", "questionnaire must be a canonical (valueCanonical url|version)")
        questionnaires.append(value)
    contexts = _named(body, "context")
    if len(contexts) > 1:
        return _bad("context", "context is 0..1")
    context = contexts[0].get("valueString") if contexts else None
    if contexts and not isinstance(context, str):
        return _bad("context", "context must be a valueString (coverage-assertion-id, PAS TRN or CDex id)")
    since: datetime | None = None
    changed = _named(body, "changedsince")
    if changed:
        since = _instant(changed[0].get("valueInstant") or changed[0].get("valueDateTime"))
        if since is None:
            return _bad("changedsince", "changedsince must be a valueInstant such as 2026-11-01T00:00:00Z")
    if not (orders or questionnaires or contexts):
        return outcome_response(400, OutcomeIssue("required", "dtr-1: give at least one order, questionnaire or "
                                                  "context", "Parameters.parameter", rule="dtr-1"))
    return PackageRequest(coverage, orders, questionnaires, context, since)


def _ref(resource: Mapping[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


@dataclass
class Selection:
    forms: dict[str, tuple[Form, list[Json]]] = field(default_factory=dict)
    issues: list[OutcomeIssue] = field(default_factory=list)

    def add(self, form: Form, orders: Sequence[Json]) -> None:
        _, held = self.forms.setdefault(form.canonical, (form, []))
        held.extend(o for o in orders if o not in held)


def _select(state: SandboxState, wanted: PackageRequest) -> Selection:
    """The forms to package, each with the orders it documents (its qr-context). Requested canonicals narrow the
    answer to those forms; without them the orders' codes decide, as the CRD service announced."""
    chosen = Selection()
    by_orders = Selection()
    for order in wanted.orders:
        codes = [c["code"] for c in billing_codings(order)]
        canonicals = [q for code in codes for q in state.crd_rules.for_code(code).questionnaires]
        forms = [f for f in (state.dtr.find(q) for q in canonicals) if f is not None]
        for found in forms:
            by_orders.add(found, [order])
        if not forms:
            codes_text = ", ".join(codes) or "no CPT/HCPCS code"
            chosen.issues.append(OutcomeIssue("informational", f"no documentation template for {_ref(order)} "
                                              f"({codes_text})", _where("order"), "information"))
    if wanted.questionnaires:
        for text in wanted.questionnaires:
            form = state.dtr.find(text)
            if form is None:
                chosen.issues.append(OutcomeIssue("not-found", f"Questionnaire {text} is not offered by this payer",
                                                  _where("questionnaire"), "warning"))
                continue
            matched = by_orders.forms.get(form.canonical)
            chosen.add(form, matched[1] if matched else wanted.orders)
    else:
        chosen.forms = by_orders.forms
        if wanted.context and not wanted.orders:
            chosen.issues.append(OutcomeIssue("not-found", f"this payer finds no forms by context {wanted.context}: "
                                              "send the order or the questionnaire canonical", _where("context"),
                                              "warning"))
    if wanted.changed_since is not None:
        since = wanted.changed_since
        chosen.forms = {k: v for k, v in chosen.forms.items() if v[0].changed > since}
    return chosen


def _purposes(state: SandboxState, form: Form) -> list[str]:
    """The CRD ``doc_purpose`` codes of the rules naming this form (the draft QR's intendedUse)."""
    found: list[str] = []
    for rule in state.crd_rules.codes.values():
        if form.canonical in rule.questionnaires:
            found += [p for p in rule.doc_purpose if p not in found]
    return found


def _draft_response(state: SandboxState, form: Form, coverage: Json, orders: Sequence[Json], now: str,
                    base: str) -> Json:
    extensions = [{"url": QR_COVERAGE, "valueReference": {"reference": _ref(coverage)}}]
    extensions += [{"url": QR_CONTEXT, "valueReference": {"reference": _ref(o)}} for o in orders if o.get("id")]
    extensions += [{"url": INTENDED_USE, "valueCodeableConcept": {"coding": [{"system": CRD_TEMP, "code": p}]}}
                   for p in _purposes(state, form)]
    qr: Json = {"resourceType": "QuestionnaireResponse", "id": str(uuid.uuid4()),
                "meta": {"profile": [f"{DTR}/dtr-questionnaireresponse"]}, "extension": extensions}
    if form.adaptive:
        qr["contained"] = [{"resourceType": "Questionnaire", "id": ADAPTIVE_ID,
                            "extension": [{"url": ADAPTIVE, "valueUrl": base}],
                            "derivedFrom": [form.canonical], "status": "active", "subjectType": ["Patient"]}]
        qr["questionnaire"] = f"#{ADAPTIVE_ID}"
    else:
        qr["questionnaire"] = form.canonical
    qr.update({"status": "in-progress", "subject": {"reference": coverage["beneficiary"]["reference"]},
               "authored": now})
    return qr


def _package_bundle(state: SandboxState, form: Form, wanted: PackageRequest, orders: Sequence[Json],
                    base: str) -> Json:
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    questionnaire = copy.deepcopy(form.questionnaire)
    for ext in questionnaire.get("extension", []):
        if ext.get("url") == ADAPTIVE:
            ext["valueUrl"] = base  # $next-question lives at this payer's FHIR base
    entries = [{"fullUrl": f"{base}/Questionnaire/{questionnaire['id']}", "resource": questionnaire}]
    qr = _draft_response(state, form, wanted.coverage, orders, now, base)
    entries.append({"fullUrl": f"urn:uuid:{qr['id']}", "resource": qr})
    entries += [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": copy.deepcopy(r)}
                for r in (*form.libraries, *form.valuesets)]
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"profile": [f"{DTR}/DTR-QPackageBundle"]},
            "type": "collection", "timestamp": now, "entry": entries}


async def questionnaire_package(request: Request) -> Response:
    got = await _authorized_body(request, "$questionnaire-package")
    if isinstance(got, Response):
        return got
    state, body = got
    wanted = _package_request(body)
    if isinstance(wanted, Response):
        return wanted
    members = {i.get("value") for i in wanted.coverage.get("identifier", []) if isinstance(i, dict)}
    members.add(wanted.coverage.get("subscriberId"))
    if not state.crd_rules.known_member({m for m in members if isinstance(m, str)}):
        return _bad("coverage", "this payer has no member with the Coverage's identifier or subscriberId", "not-found")
    chosen = _select(state, wanted)
    base = fhir_base(request)
    params = [{"name": "packagebundle", "resource": _package_bundle(state, form, wanted, orders, base)}
              for form, orders in chosen.forms.values()]
    if chosen.issues:
        params.append({"name": "outcome", "resource": operation_outcome(chosen.issues)})
    state.stats.count("dtr_packages")
    return fhir_response({"resourceType": "Parameters", **({"parameter": params} if params else {})})


# --- $next-question: the adaptive home oxygen form --------------------------------------------------

NO_TEST = "http://fhir-pa.example/sandbox/CodeSystem/oxygen-no-test-reason"
VALUE_KEYS = {"boolean": ("valueBoolean",), "decimal": ("valueDecimal", "valueInteger"), "date": ("valueDate",),
              "choice": ("valueCoding",)}


def _question(link_id: str, text: str, kind: str, **more: Any) -> Json:
    return {"linkId": link_id, "text": text, "type": kind, "required": True, **more}


FIRST_ROUND = (_question("qualifying-test", "Has the patient had an arterial blood gas or pulse oximetry test on room "
                         "air in the last 30 days?", "boolean"),)
TESTED_ROUND = (_question("spo2", "Oxygen saturation at rest on room air (%)", "decimal"),
                _question("test-date", "Date of the test", "date"))
UNTESTED_ROUND = (_question("no-test-reason", "Why is there no recent test?", "choice", answerOption=[
    {"valueCoding": {"system": NO_TEST, "code": "scheduled", "display": "A test is scheduled"}},
    {"valueCoding": {"system": NO_TEST, "code": "not-possible", "display": "The patient cannot be tested"}}]),)


def _answers(qr: Mapping[str, Any]) -> dict[str, Json]:
    return {str(i.get("linkId")): i["answer"][0] for i in walk_items(qr.get("item"))
            if isinstance(i.get("answer"), list) and i["answer"] and isinstance(i["answer"][0], dict)}


def _plan(answers: Mapping[str, Json]) -> list[tuple[Json, ...]]:
    """The rounds of questions given the answers so far; the second round branches on the first answer."""
    first = answers.get("qualifying-test", {}).get("valueBoolean")
    if first is None:
        return [FIRST_ROUND]
    return [FIRST_ROUND, TESTED_ROUND if first else UNTESTED_ROUND]


def _answer_problem(question: Json, answer: Json | None) -> str | None:
    keys = VALUE_KEYS[question["type"]]
    value = next((answer[k] for k in keys if answer and k in answer), None)
    if value is None:
        return f"answer {question['linkId']} ({question['type']}) before asking for the next question"
    if question["linkId"] == "spo2" and (isinstance(value, bool) or not 50 <= float(value) <= 100):
        return "spo2 is a percentage between 50 and 100"
    options = [o["valueCoding"]["code"] for o in question.get("answerOption", [])]
    if options and (not isinstance(value, dict) or value.get("code") not in options):
        return f"{question['linkId']} must be one of {', '.join(options)}"
    return None


def _qr_issue(message: str, expression: str = "QuestionnaireResponse", code: str = "invalid") -> Response:
    return outcome_response(400, OutcomeIssue(code, message, expression))


def _coverage_information(qr: Mapping[str, Any], answers: Mapping[str, Json]) -> Json:
    parts: list[Json] = [{"url": "coverage", "valueReference": e["valueReference"]}
                         for e in qr.get("extension", []) if e.get("url") == QR_COVERAGE][:1]
    spo2 = answers.get("spo2", {})
    saturation = spo2.get("valueDecimal", spo2.get("valueInteger"))
    if saturation is None:
        parts += [{"url": "covered", "valueCode": "conditional"}, {"url": "pa-needed", "valueCode": "auth-needed"},
                  {"url": "doc-needed", "valueCode": "clinical"},
                  {"url": "reason", "valueCodeableConcept": {"text": "home oxygen needs a qualifying test on room air; "
                                                              "submit the result with the prior authorization"}}]
    elif float(saturation) <= 88:
        parts += [{"url": "covered", "valueCode": "covered"}, {"url": "pa-needed", "valueCode": "no-auth"},
                  {"url": "reason", "valueCodeableConcept": {"text": f"resting SpO2 {saturation}% qualifies"}}]
    else:
        parts += [{"url": "covered", "valueCode": "not-covered"},
                  {"url": "reason", "valueCodeableConcept": {
                      "coding": [{"system": CRD_TEMP, "code": "not-medically-necessary"}],
                      "text": f"resting SpO2 {saturation}% is above 88%"}}]
    parts += [{"url": "date", "valueDate": datetime.now(UTC).date().isoformat()},
              {"url": "coverage-assertion-id", "valueString": f"SBX-DTR-{uuid.uuid4().hex[:12]}"}]
    return {"url": EXT_COVERAGE_INFORMATION, "extension": parts}


def _adaptive_questionnaire(state: SandboxState, qr: Mapping[str, Any]) -> Json | None:
    forms = [f for f in state.dtr.forms.values() if f.adaptive]
    known = {f.canonical for f in forms} | {f.questionnaire["url"] for f in forms}
    for resource in qr.get("contained") or []:
        if isinstance(resource, dict) and resource.get("resourceType") == "Questionnaire" and \
                known & set(resource.get("derivedFrom") or []):
            return resource
    return None


def _advance(state: SandboxState, qr: Json) -> Json | Response:
    """Append the next round to the contained Questionnaire, or complete the QR; 400 when the QR is not valid."""
    if qr.get("status") == "completed":
        return _qr_issue("the QuestionnaireResponse is already completed", "QuestionnaireResponse.status")
    contained = _adaptive_questionnaire(state, qr)
    if contained is None:
        return _qr_issue("no contained Questionnaire derivedFrom an adaptive form of this payer",
                         "QuestionnaireResponse.contained", "structure")
    if qr.get("questionnaire") not in (None, f"#{contained.get('id')}", *contained.get("derivedFrom", [])):
        return _qr_issue("questionnaire must reference the contained Questionnaire",
                         "QuestionnaireResponse.questionnaire")
    asked = [str(i.get("linkId")) for i in contained.get("item") or []]
    answers = _answers(qr)
    position = 0
    for questions in _plan(answers):
        ids = [q["linkId"] for q in questions]
        if position == len(asked):
            contained["item"] = [*(contained.get("item") or []), *copy.deepcopy(list(questions))]
            return qr
        if asked[position:position + len(ids)] != ids:
            return _qr_issue(f"the contained Questionnaire does not hold the questions this payer asked "
                             f"(expected {', '.join(ids)} after item {position})", "QuestionnaireResponse.contained")
        for question in questions:
            problem = _answer_problem(question, answers.get(question["linkId"]))
            if problem:
                return _qr_issue(problem, f"QuestionnaireResponse.item.where(linkId='{question['linkId']}')",
                                 "required" if problem.startswith("answer ") else "invalid")
        position += len(ids)
    if position != len(asked):
        return _qr_issue("the contained Questionnaire holds questions this payer did not ask",
                         "QuestionnaireResponse.contained")
    qr["status"] = "completed"
    qr["extension"] = [*qr.get("extension", []), _coverage_information(qr, answers)]
    return qr


async def next_question(request: Request) -> Response:
    got = await _authorized_body(request, "$next-question")
    if isinstance(got, Response):
        return got
    state, body = got
    parts = _named(body, "questionnaire-response", "questionnaire-response-in")
    qr = parts[0].get("resource") if len(parts) == 1 else None
    if not isinstance(qr, dict) or qr.get("resourceType") != "QuestionnaireResponse":
        return _bad("questionnaire-response", "questionnaire-response (1..1) must carry the QuestionnaireResponse",
                    "required")
    answer = _advance(state, copy.deepcopy(qr))
    if isinstance(answer, Response):
        return answer
    state.stats.count("dtr_next_questions")
    out = "questionnaire-response-out" if parts[0]["name"] == "questionnaire-response-in" else "return"
    return fhir_response({"resourceType": "Parameters", "parameter": [{"name": out, "resource": answer}]})


# --- $log-questionnaire-errors ----------------------------------------------------------------------


async def log_questionnaire_errors(request: Request) -> Response:
    got = await _authorized_body(request, "$log-questionnaire-errors")
    if isinstance(got, Response):
        return got
    state, body = got
    canonicals = [_canonical(p) for p in _named(body, "questionnaire")]
    if not canonicals or None in canonicals:
        return _bad("questionnaire", "questionnaire (1..*) must name the form's canonical", "required")
    outcomes = [p.get("resource") for p in _named(body, "operationOutcome")]
    if not outcomes or any(not isinstance(o, dict) or o.get("resourceType") != "OperationOutcome" or
                           not o.get("issue") for o in outcomes):
        return _bad("operationOutcome", "operationOutcome (1..*) must carry OperationOutcomes with issues",
                    "required")
    names = [c for c in canonicals if c is not None]
    state.dtr_errors.append(LoggedErrors(datetime.now(UTC).isoformat(), tuple(names),
                                         tuple(o for o in outcomes if isinstance(o, dict))))
    state.stats.count("dtr_errors_logged")
    issues = [OutcomeIssue("informational", f"logged {len(outcomes)} OperationOutcome(s) for {', '.join(names)}",
                           severity="information")]
    issues += [OutcomeIssue("not-found", f"{c} is not a Questionnaire this payer serves", _where("questionnaire"),
                            "warning") for c in names if state.dtr.find(c) is None]
    return fhir_response(operation_outcome(issues))

"""SDC prepopulation of a DTR questionnaire package for one patient (DTR spec-62…73).

    result = populate(package_bundle, chart_bundle, launch={"patient": "Patient/p1",
                      "device_request": "DeviceRequest/dr1"}, now=datetime(...))
    result.response        # the in-progress QuestionnaireResponse
    result.errors          # PopulationIssue records (linkId, expression, what failed) for $log-questionnaire-errors

initialExpression runs once, calculatedExpression every round, candidateExpression yields answer options;
enableWhen / enableWhenExpression decide which items exist. Rounds repeat until nothing changes; a state seen
before (oscillation) or too many rounds stops population with an error (spec-66/67). CQL defines are evaluated at
most once per population. Resuming a saved response keeps manual/override answers (a manual answer CQL would
have set becomes override) and re-runs CQL for empty and automatic ones (spec-71…73).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from fhir_pa.errors import FhirPaError, InputError

from .answers import Unmappable, answer_options, answer_value, codings, to_answers
from .elm import CqlDateTime, ElmEngine, ElmError, load_sources, parse_now
from .expressions import (
    CQL_LANGUAGES,
    ELM_JSON,
    CqlRunner,
    Evaluator,
    Expression,
    ExpressionError,
    library_names,
    to_fhirpath,
)
from .origin import AUTO, DtrVersion, Source, read_author, read_source, with_origin

SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
INITIAL = SDC + "sdc-questionnaire-initialExpression"
CALCULATED = SDC + "sdc-questionnaire-calculatedExpression"
CANDIDATE = SDC + "sdc-questionnaire-candidateExpression"
ENABLE_WHEN_EXPR = SDC + "sdc-questionnaire-enableWhenExpression"
VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
CQF_LIBRARY = "http://hl7.org/fhir/StructureDefinition/cqf-library"
DTR = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/"
QR_PROFILE = DTR + "dtr-questionnaireresponse"
MAX_ROUNDS = 20
_PACKAGE_PARTS = {"packagebundle", "return"}
_NOT_ORDERS = {"patient", "user", "coverage", "practitioner", "practitionerrole", "organization", "location"}
_REF = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")


class PopulateError(FhirPaError):
    """The package or launch context cannot be used for population at all."""

    code = "populate"


@dataclass(frozen=True)
class PopulationIssue:
    """One problem met while populating: where (linkId, expression) and what, never patient values."""

    message: str
    link_id: str | None = None
    expression: str | None = None
    severity: str = "error"

    def one_line(self) -> str:
        where = " ".join(p for p in (self.link_id and f"[{self.link_id}]", self.expression and f"{self.expression!r}")
                         if p)
        return f"{self.severity}: {where + ': ' if where else ''}{self.message}"

    def as_issue(self) -> dict[str, Any]:
        """An OperationOutcome.issue (``expression`` points at the QuestionnaireResponse item)."""
        issue: dict[str, Any] = {"severity": self.severity, "code": "processing" if self.severity == "error"
                                 else "informational", "diagnostics": self.message}
        loc = []
        if self.link_id:
            loc.append(f"QuestionnaireResponse.item.where(linkId='{self.link_id}')")
        if self.expression:
            issue["details"] = {"text": self.expression}
        if loc:
            issue["expression"] = loc
        return issue


@dataclass
class PopulateResult:
    """The populated response, plus everything that went wrong or had to be bent."""

    response: dict[str, Any]
    questionnaire: str
    errors: list[PopulationIssue] = field(default_factory=list)
    warnings: list[PopulationIssue] = field(default_factory=list)
    #: candidateExpression results as answerOption lists, by linkId
    candidates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rounds: int = 0
    #: how many distinct CQL defines were evaluated (each at most once per population)
    defines_evaluated: int = 0

    def operation_outcome(self) -> dict[str, Any]:
        """The errors as an OperationOutcome for ``$log-questionnaire-errors`` (with :attr:`questionnaire`)."""
        return {"resourceType": "OperationOutcome", "issue": [e.as_issue() for e in self.errors]}


@dataclass
class Package:
    """One Questionnaire with the Libraries, ValueSets and (optional) draft response it travels with."""

    questionnaire: dict[str, Any]
    response: dict[str, Any] | None
    libraries: list[dict[str, Any]]
    valuesets: list[dict[str, Any]]

    @property
    def canonical(self) -> str:
        q = self.questionnaire
        url = q.get("url") or f"Questionnaire/{q.get('id')}"
        return f"{url}|{q['version']}" if q.get("version") else str(url)


def _resources(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry") or []
            if isinstance(e, Mapping) and isinstance(e.get("resource"), dict)]


def read_packages(doc: Mapping[str, Any]) -> list[Package]:
    """Packages in a package Bundle or a ``$questionnaire-package`` Parameters (``packagebundle``, ``PackageBundle``
    or ``return`` parts). A Bundle with several Questionnaires (CRD RI style) gives one package per Questionnaire."""
    if doc.get("resourceType") == "Parameters":
        bundles = [p["resource"] for p in doc.get("parameter") or []
                   if isinstance(p, Mapping) and str(p.get("name", "")).lower() in _PACKAGE_PARTS
                   and isinstance(p.get("resource"), dict)]
        if not bundles:
            raise InputError("Parameters holds no packagebundle/PackageBundle/return part", path="Parameters.parameter")
        return [pkg for b in bundles for pkg in read_packages(b)]
    if doc.get("resourceType") not in ("Bundle", None) or "entry" not in doc:
        raise InputError("a questionnaire package must be a Bundle or a $questionnaire-package Parameters",
                         path="resourceType")
    res = _resources(doc)
    questionnaires = [r for r in res if r.get("resourceType") == "Questionnaire"]
    if not questionnaires:
        raise InputError("the package Bundle holds no Questionnaire", path="Bundle.entry")
    libraries = [r for r in res if r.get("resourceType") == "Library"]
    valuesets = [r for r in res if r.get("resourceType") == "ValueSet"]
    drafts = [r for r in res if r.get("resourceType") == "QuestionnaireResponse"]
    out = []
    for q in questionnaires:
        draft = next((d for d in drafts if len(questionnaires) == 1 or str(d.get("questionnaire", "")).split("|")[0]
                      == q.get("url")), None)
        out.append(Package(q, draft, libraries, valuesets))
    return out


def _as_package(package: Package | Mapping[str, Any]) -> Package:
    if isinstance(package, Package):
        return package
    found = read_packages(package)
    if len(found) != 1:
        raise InputError(f"expected one questionnaire package, found {len(found)}", path="package")
    return found[0]


# --- questionnaire helpers -------------------------------------------------------------------------------------------

def _expressions(item: Mapping[str, Any], url: str) -> list[Expression]:
    out = []
    for ext in item.get("extension") or []:
        if isinstance(ext, Mapping) and ext.get("url") == url and isinstance(ext.get("valueExpression"), Mapping):
            out.append(Expression.parse(ext["valueExpression"]))
    return out


def _walk(items: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for item in items:
        yield item
        yield from _walk(item.get("item") or [])


def _answers_by_link(items: Sequence[Mapping[str, Any]], out: dict[str, list[dict[str, Any]]]) -> None:
    for item in items:
        if not isinstance(item, Mapping):
            continue
        link = item.get("linkId")
        for answer in item.get("answer") or []:
            if isinstance(answer, Mapping):
                if isinstance(link, str):
                    out.setdefault(link, []).append({k: v for k, v in answer.items() if k != "item"})
                _answers_by_link(answer.get("item") or [], out)
        _answers_by_link(item.get("item") or [], out)


def _comparable(answer: Mapping[str, Any]) -> Any:
    kv = answer_value(answer)
    if kv is None:
        return None
    key, val = kv
    if key == "valueCoding" and isinstance(val, Mapping):
        return key, val.get("system"), val.get("code")
    return key, json.dumps(val, sort_keys=True, default=str)


def _compare(op: str, actual: Mapping[str, Any], ew: Mapping[str, Any]) -> bool:
    wanted = next(((k, v) for k, v in ew.items() if k.startswith("answer")), None)
    got = answer_value(actual)
    if wanted is None or got is None:
        return False
    wkey, wval = wanted
    akey, aval = got
    if wkey == "answerCoding" or akey == "valueCoding":
        wc, ac = codings(wval), codings(aval)
        if not wc or not ac:
            return False
        same = wc[0].get("code") == ac[0].get("code") and (
            not wc[0].get("system") or not ac[0].get("system") or wc[0].get("system") == ac[0].get("system"))
        return same if op == "=" else (not same if op == "!=" else False)
    if wkey == "answerQuantity":
        wval = (wval or {}).get("value")
    if akey == "valueQuantity":
        aval = (aval or {}).get("value")
    if wkey == "answerReference":
        wval, aval = (wval or {}).get("reference"), (aval or {}).get("reference") if isinstance(aval, Mapping) else aval
    try:
        if op == "=":
            return bool(aval == wval)
        if op == "!=":
            return bool(aval != wval)
        if op == ">":
            return bool(aval > wval)
        if op == "<":
            return bool(aval < wval)
        if op == ">=":
            return bool(aval >= wval)
        if op == "<=":
            return bool(aval <= wval)
    except TypeError:
        return False
    return False


def enable_when_holds(ew: Mapping[str, Any], answers: Sequence[Mapping[str, Any]]) -> bool:
    """One core ``enableWhen`` against the question's current answers (R4 semantics; ``!=`` holds when unanswered)."""
    op = str(ew.get("operator") or "=")
    if op == "exists":
        return bool(answers) == bool(ew.get("answerBoolean", True))
    if not answers:
        return op == "!="
    if op == "!=":
        return all(_compare("!=", a, ew) for a in answers)
    return any(_compare(op, a, ew) for a in answers)


# --- the population --------------------------------------------------------------------------------------------------

class _Population:
    def __init__(self, pkg: Package, chart: Mapping[str, Any], launch: dict[str, dict[str, Any]], now: CqlDateTime,
                 author: str | None, version: DtrVersion, fhir: httpx.Client | None) -> None:
        self.pkg = pkg
        self.q = pkg.questionnaire
        self.chart = chart
        self.launch = launch
        self.now = now
        self.author = author
        self.version: DtrVersion = version
        self.errors: list[PopulationIssue] = []
        self.warnings: list[PopulationIssue] = []
        self._seen: set[tuple[str, str | None, str | None]] = set()
        self.answers: dict[str, list[dict[str, Any]]] = {}
        self.candidates: dict[str, list[dict[str, Any]]] = {}
        self.initialised: set[str] = set()
        self.enabled: set[str] = {str(i.get("linkId")) for i in _walk(self.q.get("item") or [])}
        self.valuesets = {str(v.get("url")): v for v in pkg.valuesets if v.get("url")}
        self.valuesets.update({f"{v.get('url')}|{v.get('version')}": v for v in pkg.valuesets if v.get("version")})
        self.items = {str(i.get("linkId")): i for i in _walk(self.q.get("item") or [])}
        self.evaluator = Evaluator(self.q, self._cql(), launch, fhir)
        for item in self.items.values():
            for ext in item.get("extension") or []:
                if isinstance(ext, Mapping) and str(ext.get("url", "")).startswith("hhttp://"):
                    self.record("misspelt extension URL (hhttp://) ignored", str(item.get("linkId")),
                                str(ext.get("url")).rsplit("/", 1)[-1], "warning")

    def record(self, message: str, link_id: str | None = None, expression: str | None = None,
               severity: str = "error") -> None:
        if expression and len(expression) > 120:
            expression = expression[:100] + "…"
        key = (message, link_id, expression)
        if key in self._seen:
            return
        self._seen.add(key)
        issue = PopulationIssue(message, link_id, expression, severity)
        (self.errors if severity == "error" else self.warnings).append(issue)

    def _cql(self) -> CqlRunner | None:
        if not any(e.language in (*CQL_LANGUAGES, ELM_JSON)
                   for item in _walk(self.q.get("item") or []) for url in (INITIAL, CALCULATED, CANDIDATE,
                                                                           ENABLE_WHEN_EXPR, VARIABLE)
                   for e in _expressions(item, url)) and not _expressions(self.q, VARIABLE):
            return None
        if not self.pkg.libraries:
            return None
        try:
            engine = ElmEngine(load_sources({"resourceType": "Bundle", "entry": [
                {"resource": r} for r in [*self.pkg.libraries, *self.pkg.valuesets]]}))
        except (ElmError, FhirPaError) as exc:
            self.record(f"the package's CQL cannot be loaded: {exc.message}")
            return None
        cqf = [str(e.get("valueCanonical")) for e in self.q.get("extension") or []
               if isinstance(e, Mapping) and e.get("url") == CQF_LIBRARY and e.get("valueCanonical")]
        names = library_names(self.pkg.libraries)
        default = None
        if len(cqf) == 1:
            default = names.get(cqf[0]) or names.get(cqf[0].split("|", 1)[0])
        return CqlRunner(engine, self.chart, self.now, self.launch, default)

    # -- answers --

    def load(self, response: Mapping[str, Any] | None, *, prefill: bool) -> None:
        found: dict[str, list[dict[str, Any]]] = {}
        _answers_by_link(response.get("item") or [] if response else [], found)
        for link, answers in found.items():
            if prefill:  # payer-prefilled answers without an origin are auto-server
                answers = [a if read_source(a) else with_origin(a, "auto-server")
                           for a in answers]
            self.answers[link] = answers

    def apply(self, item: Mapping[str, Any], value: Any, expr: Expression) -> None:
        link = str(item.get("linkId"))
        try:
            mapped = to_answers(value, item, self.candidates.get(link) or answer_options(item, self.q, self.valuesets))
        except Unmappable as exc:
            self.record(str(exc), link, expr.expression)
            return
        for w in mapped.warnings:
            self.record(w, link, expr.expression, "warning")
        new = mapped.answers
        existing = self.answers.get(link, [])
        source: Source | None = read_source(existing[0]) if existing else None
        if existing and source not in AUTO:
            if source == "manual" and new and [_comparable(a) for a in new] != [_comparable(a) for a in existing]:
                author = read_author(existing[0]) or self.author
                if author:
                    self.answers[link] = [with_origin(a, "override", author=author) for a in existing]
                else:
                    self.record("a manual answer differs from the computed one but has no author", link,
                                expr.expression, "warning")
            return
        if not new:
            if existing and source == "auto-client":
                del self.answers[link]
            return
        if existing and [_comparable(a) for a in new] == [_comparable(a) for a in existing] and source == "auto-client":
            return
        # internally origins are kept in 2.2 codes; :meth:`_final` writes the requested version
        self.answers[link] = [with_origin(a, "auto-client") for a in new]

    # -- rounds --

    def variables(self, holder: Mapping[str, Any], scope: dict[str, Any], response: Mapping[str, Any],
                  link: str | None) -> dict[str, Any]:
        out = dict(scope)
        for expr in _expressions(holder, VARIABLE):
            if not expr.name:
                self.record("variable without a name", link, expr.expression)
                continue
            try:
                value = self.evaluator.evaluate(expr, response=response, qitem=holder if link else None,
                                                variables=out, link_id=link)
            except ExpressionError as exc:
                self.record(exc.message, link, expr.expression)
                out[expr.name] = []  # dependents see an empty value instead of failing in turn
                continue
            out[expr.name] = to_fhirpath(value)
        return out

    def is_enabled(self, item: Mapping[str, Any], response: Mapping[str, Any], scope: dict[str, Any]) -> bool:
        link = str(item.get("linkId"))
        conditions = item.get("enableWhen") or []
        if conditions:
            results = [enable_when_holds(ew, self.answers.get(str(ew.get("question")), [])
                                         if str(ew.get("question")) in self.enabled else [])
                       for ew in conditions if isinstance(ew, Mapping)]
            ok = any(results) if item.get("enableBehavior") == "any" else all(results)
            if not ok:
                return False
        for expr in _expressions(item, ENABLE_WHEN_EXPR):
            try:
                value = self.evaluator.evaluate(expr, response=response, qitem=item, variables=scope, link_id=link)
            except ExpressionError as exc:
                self.record(exc.message, link, expr.expression)
                continue  # an unusable condition does not hide the question
            flat = value if isinstance(value, list) else [value]
            if not (flat and flat[0] is True):
                return False
        return True

    def visit(self, items: Sequence[Mapping[str, Any]], scope: dict[str, Any], response: Mapping[str, Any],
              enabled: set[str]) -> None:
        for item in items:
            link = str(item.get("linkId"))
            local = self.variables(item, scope, response, link)
            if not self.is_enabled(item, response, local):
                continue
            enabled.add(link)
            for expr in _expressions(item, CANDIDATE):
                try:
                    value = self.evaluator.evaluate(expr, response=response, qitem=item, variables=local, link_id=link)
                    opts: list[dict[str, Any]] = []
                    for v in value if isinstance(value, list) else [value]:
                        mapped = to_answers(v, {**item, "repeats": True}, ())
                        opts.extend({k: a[k] for k in a if k.startswith("value")} for a in mapped.answers)
                    self.candidates[link] = opts
                except ExpressionError as exc:
                    self.record(exc.message, link, expr.expression)
                except Unmappable as exc:
                    self.record(str(exc), link, expr.expression)
            if link not in self.initialised:
                for expr in _expressions(item, INITIAL):
                    self.initialised.add(link)
                    self.evaluate_into(item, expr, response, local)
            for expr in _expressions(item, CALCULATED):
                self.evaluate_into(item, expr, response, local)
            self.visit(item.get("item") or [], local, response, enabled)

    def evaluate_into(self, item: Mapping[str, Any], expr: Expression, response: Mapping[str, Any],
                      scope: dict[str, Any]) -> None:
        link = str(item.get("linkId"))
        try:
            value = self.evaluator.evaluate(expr, response=response, qitem=item, variables=scope, link_id=link)
        except ExpressionError as exc:
            self.record(exc.message, link, exc.expression)
            return
        self.apply(item, value, expr)

    def run(self, header: dict[str, Any]) -> int:
        seen: list[str] = []
        for round_no in range(1, MAX_ROUNDS + 1):
            response = self.build(header)
            scope = self.variables(self.q, {}, response, None)
            enabled: set[str] = set()
            self.visit(self.q.get("item") or [], scope, response, enabled)
            self.enabled = enabled
            state = json.dumps([sorted(enabled), self.answers], sort_keys=True, default=str)
            if seen and state == seen[-1]:
                return round_no
            if state in seen:
                self.record("enableWhen/calculated answers oscillate; automatic population stopped (spec-67)")
                return round_no
            seen.append(state)
        self.record(f"no steady state after {MAX_ROUNDS} rounds; automatic population stopped (spec-66)")
        return MAX_ROUNDS

    # -- output --

    def _final(self, answer: Mapping[str, Any]) -> dict[str, Any]:
        source = read_source(answer)
        if source in AUTO:
            return with_origin(answer, source, version=self.version)
        return dict(answer)

    def build_items(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in items:
            link = str(item.get("linkId"))
            if link not in self.enabled or item.get("type") == "display":
                continue
            children = self.build_items(item.get("item") or [])
            node: dict[str, Any] = {"linkId": link}
            if item.get("text"):
                node["text"] = item["text"]
            if item.get("type") == "group":
                if not children:
                    continue
                node["item"] = children
            else:
                answers = [self._final(a) for a in self.answers.get(link, [])]
                if not answers:
                    continue
                if children:
                    answers[0] = {**answers[0], "item": children}
                node["answer"] = answers
            out.append(node)
        return out

    def build(self, header: Mapping[str, Any]) -> dict[str, Any]:
        return {**header, "item": self.build_items(self.q.get("item") or [])}


def _resolve_launch(launch: Mapping[str, str], chart: Mapping[str, Any], fhir: httpx.Client | None,
                    record: list[PopulationIssue]) -> dict[str, dict[str, Any]]:
    by_ref = {f"{r.get('resourceType')}/{r.get('id')}": r for r in _resources(chart)}
    out: dict[str, dict[str, Any]] = {}
    for name, ref in launch.items():
        res = by_ref.get(ref)
        if res is None and fhir is not None and _REF.match(ref):
            try:
                resp = fhir.get(ref)
                res = resp.json() if resp.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                res = None
        if not isinstance(res, dict):
            record.append(PopulationIssue(f"launch context {name} ({ref.split('/')[0]}) is not in the chart"))
            continue
        out[name] = res
    if "patient" not in out:
        patient = next((r for r in _resources(chart) if r.get("resourceType") == "Patient"), None)
        if patient is not None:
            out["patient"] = patient
    return out


def complete_chart(chart: Mapping[str, Any], fhir: httpx.Client, *, limit: int = 100) -> dict[str, Any]:
    """The chart plus every resource its resources reference but it lacks, read from ``fhir`` (CQL retrieves of
    Practitioner/Coverage need them: dtr.md §5 pitfall 10). Unreadable references are skipped."""
    resources = _resources(chart)
    have = {f"{r.get('resourceType')}/{r.get('id')}" for r in resources}
    wanted: list[str] = []

    def scan(node: Any) -> None:
        if isinstance(node, Mapping):
            ref = node.get("reference")
            if isinstance(ref, str) and _REF.match(ref) and ref not in have and ref not in wanted:
                wanted.append(ref)
            for v in node.values():
                scan(v)
        elif isinstance(node, list):
            for v in node:
                scan(v)

    scan(resources)
    added = []
    for ref in wanted[:limit]:
        try:
            resp = fhir.get(ref)
        except httpx.HTTPError:
            continue
        if resp.status_code == 200:
            body = resp.json()
            if isinstance(body, dict) and body.get("resourceType"):
                added.append(body)
    return {**chart, "resourceType": "Bundle", "entry": [*(chart.get("entry") or []),
                                                          *({"resource": r} for r in added)]}


def _moment(now: _dt.datetime | str | None) -> _dt.datetime | None:
    """``now`` as an aware datetime for FHIRPath (None keeps the real clock)."""
    if now is None:
        return None
    moment = now if isinstance(now, _dt.datetime) else _dt.datetime.fromisoformat(now.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=_dt.UTC)


def _now(now: _dt.datetime | str | None) -> CqlDateTime:
    if isinstance(now, _dt.datetime):
        if now.tzinfo is None:
            now = now.replace(tzinfo=_dt.UTC)
        return parse_now(now.isoformat(timespec="milliseconds"))
    return parse_now(now)


def _header(pkg: Package, launch: Mapping[str, Mapping[str, Any]], launch_refs: Mapping[str, str],
            now: CqlDateTime, author: str | None, version: DtrVersion,
            base: Mapping[str, Any] | None) -> dict[str, Any]:
    header: dict[str, Any] = {"resourceType": "QuestionnaireResponse", "meta": {"profile": [QR_PROFILE]}}
    if base and base.get("id"):
        header["id"] = base["id"]
    exts = [e for e in (base or {}).get("extension") or [] if isinstance(e, Mapping)]
    if not exts:
        for name, ref in launch_refs.items():
            kind = ref.split("/", 1)[0]
            if name.lower() == "coverage" or kind == "Coverage":
                url = DTR + ("qr-coverage" if version == "2.2" else "qr-context")
                exts.append({"url": url, "valueReference": {"reference": ref}})
            elif name.lower() not in _NOT_ORDERS and kind not in ("Patient", "Practitioner", "PractitionerRole"):
                exts.append({"url": DTR + "qr-context", "valueReference": {"reference": ref}})
    if exts:
        header["extension"] = exts
    header["questionnaire"] = pkg.canonical
    header["status"] = "in-progress"
    patient = launch.get("patient")
    if base and base.get("subject"):
        header["subject"] = base["subject"]
    elif patient is not None:
        header["subject"] = {"reference": f"Patient/{patient.get('id')}"}
    header["authored"] = str(now)
    if author:
        header["author"] = {"reference": author}
    elif base and base.get("author"):
        header["author"] = base["author"]
    return header


def populate(package: Package | Mapping[str, Any], chart: Mapping[str, Any], *,
             launch: Mapping[str, str] | None = None, now: _dt.datetime | str | None = None,
             previous: Mapping[str, Any] | None = None, author: str | None = None,
             version: DtrVersion = "2.2", fhir: httpx.Client | None = None) -> PopulateResult:
    """Pre-populate ``package``'s Questionnaire for the patient in ``chart`` (a Bundle).

    ``launch`` names launch-context resources (``{"patient": "Patient/x", "device_request": "DeviceRequest/y"}``):
    they become FHIRPath ``%name`` variables and are passed to CQL parameters of the same name (case-insensitive,
    ``_``/``-`` ignored). ``previous`` is a saved response to resume; ``author`` the current user (needed to flip
    manual answers to override). ``fhir`` (optional) serves ``x-fhir-query`` and launch resources missing from the
    chart. Raises :class:`PopulateError` / InputError only for unusable input; expression failures are in
    ``errors``.
    """
    if version not in ("2.2", "2.0.1"):
        raise PopulateError(f"unknown DTR version {version!r}", path="version")
    if chart.get("resourceType") != "Bundle":
        raise PopulateError("the chart must be a FHIR Bundle", path="chart.resourceType")
    pkg = _as_package(package)
    if fhir is not None:
        chart = complete_chart(chart, fhir)
    when = _now(now)
    launch_refs = dict(launch or {})
    issues: list[PopulationIssue] = []
    resources = _resolve_launch(launch_refs, chart, fhir, issues)
    if "patient" not in resources:
        raise PopulateError("no Patient in the chart or launch context", path="launch.patient")
    pop = _Population(pkg, chart, resources, when, author, version, fhir)
    pop.evaluator.now = _moment(now)
    pop.errors.extend(issues)
    pop.load(pkg.response, prefill=True)
    if previous is not None:
        pop.answers = {}
        pop.load(previous, prefill=False)
    header = _header(pkg, resources, launch_refs, when, author, version, previous or pkg.response)
    rounds = pop.run(header)
    response = pop.build(header)
    if not response["item"]:
        del response["item"]
    cql = pop.evaluator.cql
    return PopulateResult(response, pkg.canonical, pop.errors, pop.warnings, pop.candidates, rounds,
                          cql.evaluations if cql is not None else 0)

"""Fetch a payer's forms: the DTR ``$questionnaire-package`` operation (DTR 2.2 §1.3, notes/dtr.md).

What we send is built strictly to the 2.2 input profile (coverage 1..1, dtr-1); what payers send back is read
leniently, because the shapes in the wild differ (``packagebundle`` 2.2, ``PackageBundle`` 2.1, ``return`` 2.0.1
and the CRD RI, a bare Bundle, several Questionnaires in one Bundle, no draft QuestionnaireResponse). Anything
tolerated becomes a warning :class:`~fhir_pa.errors.Issue` on the result, never a silent fix.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from fhir_pa.crd.handoff import DtrHandoff
from fhir_pa.errors import InputError, InvalidResponse, Issue, PayerRejected, PayerUnavailable, ProfileError
from fhir_pa.fhir.flow import Flow, exchange
from fhir_pa.fhir.outcome import outcome_issues, parse_outcome
from fhir_pa.pas.decision_types import PasDecision

Json = dict[str, Any]
FHIR_JSON = "application/fhir+json"
HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}

DTR = "http://hl7.org/fhir/us/davinci-dtr"
INPUT_PROFILE = f"{DTR}/StructureDefinition/dtr-qpackage-input-parameters"
ELM_JSON = "application/elm+json"
#: LOINC "fill in the payer's questionnaire via DTR", in a pended PAS response (spec-109).
DTR_NEEDED_LOINC = "102089-0"
#: Resource types the 2.2 OperationDefinition admits as ``order``.
ORDER_TYPES = frozenset({"Appointment", "Encounter", "CommunicationRequest", "DeviceRequest", "MedicationRequest",
                         "NutritionOrder", "ServiceRequest", "SupplyRequest", "VisionPrescription"})
#: Output part names by version (2.2, 2.1, 2.0.1 / CRD RI); matched case-insensitively.
PACKAGE_PART_NAMES = frozenset({"packagebundle", "return"})


# --- building the input ----------------------------------------------------------------------------


def _instant(value: str | datetime) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InputError("changedsince must carry a time zone (FHIR instant)", path="Parameters.changedsince")
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


def package_parameters(coverage: Mapping[str, Any], orders: Sequence[Mapping[str, Any]] = (), *,
                       questionnaires: Sequence[str] = (), context: str | None = None,
                       changedsince: str | datetime | None = None) -> Json:
    """The ``$questionnaire-package`` input Parameters; :class:`ProfileError` if they break the 2.2 profile.

    One call per payer: ``coverage`` is that payer's Coverage. ``context`` is CRD's coverage-assertion-id or a
    pended PAS request's TRN; ``changedsince`` (the draft QR's ``meta.lastUpdated`` on resume) lets the payer say
    "unchanged" by returning no package.
    """
    parameter: list[Json] = [{"name": "coverage", "resource": copy.deepcopy(dict(coverage))}]
    parameter += [{"name": "order", "resource": copy.deepcopy(dict(order))} for order in orders]
    parameter += [{"name": "questionnaire", "valueCanonical": url} for url in questionnaires]
    if context:
        parameter.append({"name": "context", "valueString": context})
    if changedsince is not None:
        parameter.append({"name": "changedsince", "valueInstant": _instant(changedsince)})
    parameters: Json = {"resourceType": "Parameters", "meta": {"profile": [INPUT_PROFILE]}, "parameter": parameter}
    errors = [i for i in check_package_parameters(parameters) if i.severity == "error"]
    if errors:
        raise ProfileError(errors)
    return parameters


def parameters_from_handoff(handoff: DtrHandoff, coverage: Mapping[str, Any],
                            orders: Sequence[Mapping[str, Any]], *,
                            changedsince: str | datetime | None = None) -> Json:
    """Inputs after CRD (spec-107/126): the order (and its referenced resources' holder) with CRD's assertion id.

    ``handoff`` names resources by reference; the caller supplies them (``coverage`` and the ``orders``, the
    first of which must be the order the hand-off is about).
    """
    if orders:
        first = orders[0]
        ref = f"{first.get('resourceType')}/{first.get('id')}"
        if handoff.order and not handoff.order.endswith(ref):
            raise InputError(f"the first order is {ref}, but the CRD hand-off is about {handoff.order}",
                             path="orders[0]")
    if handoff.coverage and coverage.get("id") and not handoff.coverage.endswith(f"Coverage/{coverage.get('id')}"):
        raise InputError(f"the coverage given is not the one CRD named ({handoff.coverage})", path="coverage")
    context = handoff.coverage_assertion_ids[0] if handoff.coverage_assertion_ids else None
    return package_parameters(coverage, orders, questionnaires=handoff.questionnaires, context=context,
                              changedsince=changedsince)


def pended_context(decision: PasDecision) -> str | None:
    """The DTR context of a pended PAS response: its TRN, when the payer asked for DTR (LOINC 102089-0)."""
    if not any(DTR_NEEDED_LOINC in request.codes for request in decision.information_requests):
        return None
    for identifier in decision.request_identifiers:
        value = identifier.rsplit("|", 1)[-1]
        if value:
            return value
    return None


def parameters_from_pended(decision: PasDecision, coverage: Mapping[str, Any], *, trn: str | None = None,
                           changedsince: str | datetime | None = None) -> Json:
    """Inputs after a pended PAS response (spec-109): context = the TRN, no order."""
    context = trn or pended_context(decision)
    if not context:
        raise InputError(f"the PAS response does not ask for DTR documentation (no LOINC {DTR_NEEDED_LOINC} "
                         "request with a TRN)", path="ClaimResponse.communicationRequest")
    return package_parameters(coverage, context=context, changedsince=changedsince)


def _parts(parameters: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = parameters.get("parameter")
    return [p for p in raw if isinstance(p, Mapping)] if isinstance(raw, list) else []


def check_package_parameters(parameters: Any, *, version: str = "2.2") -> list[Issue]:
    """Problems with ``$questionnaire-package`` input Parameters (profile + dtr-1), with locations."""
    if not isinstance(parameters, Mapping) or parameters.get("resourceType") != "Parameters":
        kind = parameters.get("resourceType") if isinstance(parameters, Mapping) else type(parameters).__name__
        return [Issue("resourceType", f"the input must be a Parameters resource, not {kind}", "structure")]
    issues: list[Issue] = []
    counts: dict[str, int] = {}
    for n, part in enumerate(_parts(parameters)):
        name = str(part.get("name") or "")
        counts[name] = counts.get(name, 0) + 1
        where = f"Parameters.parameter[{n}]"
        resource = part.get("resource")
        kind = resource.get("resourceType") if isinstance(resource, Mapping) else None
        if name == "coverage" and kind != "Coverage":
            issues.append(Issue(f"{where}.resource", "coverage must be a Coverage resource", "type"))
        elif name == "order" and kind not in ORDER_TYPES:
            issues.append(Issue(f"{where}.resource", f"order must be one of {', '.join(sorted(ORDER_TYPES))}",
                                "type"))
        elif name == "questionnaire" and not isinstance(part.get("valueCanonical"), str):
            issues.append(Issue(f"{where}.valueCanonical", "questionnaire must be a canonical", "type"))
        elif name == "context" and not isinstance(part.get("valueString"), str):
            issues.append(Issue(f"{where}.valueString", "context must be a string", "type"))
        elif name == "changedsince" and not isinstance(part.get("valueInstant"), str):
            issues.append(Issue(f"{where}.valueInstant", "changedsince must be an instant", "type"))
        elif name == "referenced" and version == "2.2":
            issues.append(Issue(where, "'referenced' was removed in DTR 2.2", "version", "warning"))
        elif name not in ("coverage", "order", "questionnaire", "context", "changedsince", "referenced"):
            issues.append(Issue(f"{where}.name", f"unknown parameter {name!r}", "unknown", "warning"))
    coverages = counts.get("coverage", 0)
    if coverages == 0:
        issues.append(Issue("Parameters.parameter", "coverage is required (1..1)", "cardinality"))
    elif coverages > 1 and version == "2.2":
        issues.append(Issue("Parameters.parameter", f"coverage is 1..1 in DTR 2.2 (found {coverages}): "
                            "call each payer once with its own coverage", "cardinality"))
    for name in ("context", "changedsince"):
        if counts.get(name, 0) > 1:
            issues.append(Issue("Parameters.parameter", f"{name} is 0..1 (found {counts[name]})", "cardinality"))
    if not any(counts.get(name) for name in ("order", "questionnaire", "context")):
        issues.append(Issue("Parameters", "at least one of order, questionnaire or context is required", "dtr-1"))
    return issues


# --- reading the output ----------------------------------------------------------------------------


def _resources(bundle: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    entries = bundle.get("entry")
    out: list[Mapping[str, Any]] = []
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if isinstance(resource, Mapping):
            out.append(resource)
    return out


def _canonical(resource: Mapping[str, Any]) -> str | None:
    url = resource.get("url")
    if not isinstance(url, str):
        return None
    version = resource.get("version")
    return f"{url}|{version}" if isinstance(version, str) and version else url


@dataclass(frozen=True)
class QuestionnairePackage:
    """One form as the payer served it: the Questionnaire, its draft response (if any) and what it needs to run."""

    questionnaire: Json
    #: The payer's draft (maybe prepopulated) QuestionnaireResponse, or None when the payer sent none.
    response: Json | None
    libraries: tuple[Json, ...]
    valuesets: tuple[Json, ...]
    #: The Bundle this package came from (shared when a payer put several Questionnaires in one Bundle).
    bundle: Json
    warnings: tuple[Issue, ...] = ()

    @property
    def canonical(self) -> str | None:
        """``url|version`` of the Questionnaire (the value the QR's ``questionnaire`` must carry, spec-122)."""
        return _canonical(self.questionnaire)

    @property
    def adaptive(self) -> bool:
        return any(isinstance(e, Mapping) and str(e.get("url", "")).endswith("sdc-questionnaire-questionnaireAdaptive")
                   for e in self.questionnaire.get("extension") or [])


@dataclass(frozen=True)
class PackageSet:
    """Everything one ``$questionnaire-package`` call returned."""

    packages: tuple[QuestionnairePackage, ...]
    #: The payer's ``outcome`` warnings (e.g. a requested Questionnaire not found, oper-9) and our reading notes.
    warnings: tuple[Issue, ...] = ()
    #: The payer answered 200 with no package: with ``changedsince`` this means "what you have is current".
    unchanged: bool = False
    #: True when these packages came from the cache (the payer said "unchanged").
    from_cache: bool = False


def check_package_bundle(bundle: Mapping[str, Any], where: str = "Bundle") -> list[Issue]:
    """DTR-QPackageBundle rules a client relies on, as warnings: Questionnaire first, ELM present."""
    issues: list[Issue] = []
    resources = _resources(bundle)
    if bundle.get("type") != "collection":
        issues.append(Issue(f"{where}.type", "a package Bundle should be a 'collection'", "DTR-QPackageBundle",
                            "warning"))
    if not resources or resources[0].get("resourceType") != "Questionnaire":
        issues.append(Issue(f"{where}.entry[0].resource", "the Questionnaire should be the first entry", "dtrb-1",
                            "warning"))
    questionnaires = sum(1 for r in resources if r.get("resourceType") == "Questionnaire")
    if questionnaires > 1:
        issues.append(Issue(f"{where}.entry", f"{questionnaires} Questionnaires in one package Bundle (DTR expects "
                            "one); each is read as its own package", "DTR-QPackageBundle", "warning"))
    if not any(r.get("resourceType") == "QuestionnaireResponse" for r in resources):
        issues.append(Issue(f"{where}.entry", "no draft QuestionnaireResponse in the package", "DTR-QPackageBundle",
                            "warning"))
    for n, resource in enumerate(resources):
        if resource.get("resourceType") != "Library":
            continue
        content = resource.get("content")
        types = {c.get("contentType") for c in content if isinstance(c, Mapping) and c.get("data")} \
            if isinstance(content, list) else set()
        if ELM_JSON not in types:
            issues.append(Issue(f"{where}.entry[{n}].resource.content", f"Library {resource.get('id')!s} carries "
                                f"no inline {ELM_JSON}; its logic cannot run", "oper-13", "warning"))
    return issues


def _match_response(questionnaire: Mapping[str, Any], responses: list[Mapping[str, Any]],
                    only: bool) -> Mapping[str, Any] | None:
    url = questionnaire.get("url")
    for response in responses:
        target = response.get("questionnaire")
        if isinstance(target, str) and isinstance(url, str) and target.split("|")[0] == url:
            return response
    return responses[0] if only and len(responses) == 1 else None


def packages_of_bundle(bundle: Mapping[str, Any], where: str = "Bundle") -> list[QuestionnairePackage]:
    """Split one package Bundle into its forms; libraries and value sets are shared between them."""
    resources = _resources(bundle)
    warnings = tuple(check_package_bundle(bundle, where))
    questionnaires = [r for r in resources if r.get("resourceType") == "Questionnaire"]
    responses = [r for r in resources if r.get("resourceType") == "QuestionnaireResponse"]
    libraries = tuple(dict(r) for r in resources if r.get("resourceType") == "Library")
    valuesets = tuple(dict(r) for r in resources if r.get("resourceType") == "ValueSet")
    whole = dict(bundle)
    return [QuestionnairePackage(dict(q), _copy(_match_response(q, responses, len(questionnaires) == 1)),
                                 libraries, valuesets, whole, warnings) for q in questionnaires]


def _copy(resource: Mapping[str, Any] | None) -> Json | None:
    return dict(resource) if resource is not None else None


def _json(status: int, body: bytes, what: str) -> Any:
    try:
        return json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        raise InvalidResponse(f"{what}: HTTP {status} with a body that is not JSON", path="$") from None


def raise_for_outcome(status: int, body: bytes, what: str) -> None:
    """A 5xx or 429 becomes :class:`PayerUnavailable` (try again later); a 4xx or a bare OperationOutcome with errors
    :class:`PayerRejected` naming the payer's first issue."""
    if status >= 500 or status == 429:
        raise PayerUnavailable(status, 1)
    outcome = parse_outcome(body)
    if status >= 400 or (outcome is not None and any(
            i.severity in ("error", "fatal") for i in outcome_issues(outcome))):
        issues = outcome_issues(outcome) if outcome else []
        raise PayerRejected(status, outcome, issues)
    if status >= 300:
        raise InvalidResponse(f"{what}: unexpected HTTP {status}", path="$")


def read_package_response(status: int, body: bytes) -> PackageSet:
    """Read a ``$questionnaire-package`` answer in any of the shapes payers send.

    Raises :class:`PayerRejected` for an error status or a bare OperationOutcome with errors (spec-130, oper-8),
    :class:`InvalidResponse` for anything that is not FHIR we can use.
    """
    what = "$questionnaire-package"
    raise_for_outcome(status, body, what)
    data = _json(status, body, what)
    if not isinstance(data, Mapping):
        raise InvalidResponse(f"{what}: the answer is not a FHIR resource", path="$")
    kind = data.get("resourceType")
    warnings: list[Issue] = []
    packages: list[QuestionnairePackage] = []
    if kind == "OperationOutcome":  # only warnings/information (errors raised above)
        return PackageSet((), tuple(outcome_issues(data)), unchanged=True)
    if kind == "Bundle":
        warnings.append(Issue("Bundle", "a bare Bundle instead of Parameters (pre-2.2 shape)", "shape", "warning"))
        packages = packages_of_bundle(data)
    elif kind == "Parameters":
        for n, part in enumerate(_parts(data)):
            name = str(part.get("name") or "")
            resource = part.get("resource")
            where = f"Parameters.parameter[{n}]"
            if name.lower() in PACKAGE_PART_NAMES and isinstance(resource, Mapping):
                if resource.get("resourceType") != "Bundle":
                    warnings.append(Issue(f"{where}.resource", f"{name} holds a {resource.get('resourceType')}, "
                                          "not a Bundle; ignored", "shape", "warning"))
                    continue
                if name != "packagebundle":
                    warnings.append(Issue(f"{where}.name", f"part name {name!r} (DTR 2.2: 'packagebundle')",
                                          "version", "warning"))
                packages += packages_of_bundle(resource, f"{where}.resource")
            elif name == "outcome" and isinstance(resource, Mapping):
                warnings += [Issue(i.path or f"{where}.resource", i.message, i.rule, "warning")
                             for i in outcome_issues(resource)]
            else:
                warnings.append(Issue(f"{where}.name", f"unexpected output part {name!r}; ignored", "shape",
                                      "warning"))
    else:
        raise InvalidResponse(f"{what}: expected Parameters or Bundle, got {kind}", path="resourceType")
    if not packages and kind == "Bundle":
        raise InvalidResponse(f"{what}: the Bundle holds no Questionnaire", path="Bundle.entry")
    return PackageSet(tuple(packages), tuple(warnings), unchanged=not packages)


# --- the call, with a cache honouring changedsince -------------------------------------------------


def _reference_key(resource: Mapping[str, Any]) -> str:
    if resource.get("id"):
        return f"{resource.get('resourceType')}/{resource.get('id')}"
    return json.dumps(resource, sort_keys=True, separators=(",", ":"))


def cache_key(payer_base: str, parameters: Mapping[str, Any]) -> tuple[str, str, tuple[str, ...], str, tuple[str, ...]]:
    """(payer, coverage, orders, context, questionnaires): what decides which forms a payer serves."""
    coverage, context = "", ""
    orders: list[str] = []
    questionnaires: list[str] = []
    for part in _parts(parameters):
        resource = part.get("resource")
        if part.get("name") == "coverage" and isinstance(resource, Mapping):
            coverage = _reference_key(resource)
        elif part.get("name") == "order" and isinstance(resource, Mapping):
            orders.append(_reference_key(resource))
        elif part.get("name") == "context":
            context = str(part.get("valueString") or "")
        elif part.get("name") == "questionnaire":
            questionnaires.append(str(part.get("valueCanonical") or ""))
    return payer_base.rstrip("/"), coverage, tuple(sorted(orders)), context, tuple(sorted(questionnaires))


@dataclass
class PackageCache:
    """Packages by (payer, coverage, orders, context); an "unchanged" answer keeps the cached packages."""

    entries: dict[tuple[str, str, tuple[str, ...], str, tuple[str, ...]], tuple[PackageSet, str]] = \
        field(default_factory=dict)

    def get(self, payer_base: str, parameters: Mapping[str, Any]) -> PackageSet | None:
        found = self.entries.get(cache_key(payer_base, parameters))
        return found[0] if found else None

    def fetched_at(self, payer_base: str, parameters: Mapping[str, Any]) -> str | None:
        """When the cached packages were fetched: the ``changedsince`` to send next time."""
        found = self.entries.get(cache_key(payer_base, parameters))
        return found[1] if found else None

    def put(self, payer_base: str, parameters: Mapping[str, Any], result: PackageSet,
            at: datetime | None = None) -> PackageSet:
        """Store ``result`` unless it is "unchanged"; returns what the caller should use."""
        key = cache_key(payer_base, parameters)
        cached = self.entries.get(key)
        if result.unchanged and _has(parameters, "changedsince") and cached is not None:
            return PackageSet(cached[0].packages, result.warnings, unchanged=True, from_cache=True)
        if result.packages:
            self.entries[key] = (result, _instant(at or datetime.now(UTC)))
        return result


def _has(parameters: Mapping[str, Any], name: str) -> bool:
    return any(p.get("name") == name for p in _parts(parameters))


def with_changedsince(parameters: Mapping[str, Any], since: str | datetime) -> Json:
    """A copy of ``parameters`` with ``changedsince`` set (replacing any earlier one)."""
    out = copy.deepcopy(dict(parameters))
    out["parameter"] = [p for p in _parts(out) if p.get("name") != "changedsince"]
    out["parameter"].append({"name": "changedsince", "valueInstant": _instant(since)})
    return out


def package_url(payer_base: str) -> str:
    return f"{payer_base.rstrip('/')}/Questionnaire/$questionnaire-package"


def package_flow(payer_base: str, parameters: Mapping[str, Any], *, cache: PackageCache | None = None,
                 fallback: bool = True) -> Flow[PackageSet]:
    """POST ``[base]/Questionnaire/$questionnaire-package`` and read the answer.

    With a ``cache`` that already holds packages for the same inputs, ``changedsince`` is added (unless given) and
    a 200 without packages returns the cached ones (``from_cache``). With ``fallback`` a 404/405 at the
    type-level path is retried once at ``[base]/$questionnaire-package`` (2.0.1 CapabilityStatements, 2.2 prose).
    """
    errors = [i for i in check_package_parameters(parameters) if i.severity == "error"]
    if errors:
        raise ProfileError(errors)
    send: Mapping[str, Any] = parameters
    if cache is not None and not _has(parameters, "changedsince"):
        since = cache.fetched_at(payer_base, parameters)
        if since is not None:
            send = with_changedsince(parameters, since)
    body = json.dumps(send, separators=(",", ":")).encode("utf-8")
    response = yield from exchange(httpx.Request("POST", package_url(payer_base), content=body, headers=HEADERS))
    if fallback and response.status_code in (404, 405):
        system_url = f"{payer_base.rstrip('/')}/$questionnaire-package"
        response = yield from exchange(httpx.Request("POST", system_url, content=body, headers=HEADERS))
    result = read_package_response(response.status_code, response.content)
    return cache.put(payer_base, send, result) if cache is not None else result


def all_warnings(result: PackageSet) -> Iterable[Issue]:
    """The call's warnings followed by each package's own."""
    yield from result.warnings
    seen: set[int] = set()
    for package in result.packages:
        if id(package.bundle) not in seen:
            seen.add(id(package.bundle))
            yield from package.warnings


__all__ = [
    "DTR_NEEDED_LOINC",
    "INPUT_PROFILE",
    "PackageCache",
    "PackageSet",
    "QuestionnairePackage",
    "all_warnings",
    "cache_key",
    "check_package_bundle",
    "check_package_parameters",
    "package_flow",
    "package_parameters",
    "package_url",
    "packages_of_bundle",
    "parameters_from_handoff",
    "parameters_from_pended",
    "pended_context",
    "read_package_response",
    "with_changedsince",
]

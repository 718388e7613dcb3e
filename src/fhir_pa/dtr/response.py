"""Finish the DTR QuestionnaireResponse we hand on (DTR 2.2 §1.7) and wrap it in a DTR QR Bundle.

2.2 links the response to its coverage with ``qr-coverage`` (1..*) and to the order with ``qr-context`` (0..*);
2.0.1 (the Inferno test kit's target) put both in ``qr-context`` and used the origin code ``auto`` where 2.2 has
``auto-client``/``auto-server``. ``version`` switches between the two; the default is 2.2.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from fhir_pa.dtr.origin import ORIGIN_URL, origin_parts
from fhir_pa.errors import Issue, ProfileError

Json = dict[str, Any]
Version = Literal["2.2", "2.0.1"]

DTR_SD = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition"
PROFILE = f"{DTR_SD}/dtr-questionnaireresponse"
QR_BUNDLE_PROFILE = f"{DTR_SD}/DTR-QRBundle"
QR_COVERAGE = f"{DTR_SD}/qr-coverage"
QR_CONTEXT = f"{DTR_SD}/qr-context"
INTENDED_USE = f"{DTR_SD}/intendedUse"
ORIGIN = ORIGIN_URL
CRD_TEMP = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
#: information-origin source codes by version (2.2 binding is required).
SOURCES: dict[str, frozenset[str]] = {
    "2.2": frozenset({"auto-client", "auto-server", "override", "manual"}),
    "2.0.1": frozenset({"auto", "override", "manual"}),
}
AUTO = frozenset({"auto", "auto-client", "auto-server"})
AUTHOR_TYPES = frozenset({"Device", "Patient", "Practitioner", "PractitionerRole", "Organization", "RelatedPerson"})
CONTEXT_TYPES = frozenset({"DeviceRequest", "MedicationRequest", "NutritionOrder", "ServiceRequest", "Encounter",
                           "Appointment"})


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _ref(reference: str) -> Json:
    kind = _ref_type(reference)
    return {"reference": reference, "type": kind} if kind else {"reference": reference}


def _ref_type(reference: str) -> str | None:
    parts = reference.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 and parts[-2][:1].isupper() else None


def iter_answers(node: Any) -> Iterator[tuple[str, str, Json]]:
    """(linkId, location, answer copy) for every answer, nested items included; locations name the linkId."""
    items = node.get("item") if isinstance(node, Mapping) else None
    for item in _list(items):
        if not isinstance(item, Mapping):
            continue
        link_id = str(item.get("linkId") or "")
        where = f"QuestionnaireResponse.item.where(linkId='{link_id}')"
        for n, answer in enumerate(_list(item.get("answer"))):
            if isinstance(answer, Mapping):
                yield link_id, f"{where}.answer[{n}]", dict(answer)  # a copy; mutations go through _answers()
                yield from iter_answers(answer)
        yield from iter_answers(item)


def _answers(node: Any) -> Iterator[tuple[str, Json]]:
    """Mutable answers (linkId, answer dict)."""
    for item in _list(node.get("item") if isinstance(node, Mapping) else None):
        if not isinstance(item, dict):
            continue
        for answer in _list(item.get("answer")):
            if isinstance(answer, dict):
                yield str(item.get("linkId") or ""), answer
                yield from _answers(answer)
        yield from _answers(item)


def origin_of(answer: Mapping[str, Any]) -> tuple[str | None, bool] | None:
    """(source code, has author) of an answer's information-origin, or None when it has none."""
    for ext in _list(answer.get("extension")):
        if isinstance(ext, Mapping) and ext.get("url") == ORIGIN:
            source: str | None = None
            author = False
            for part in _list(ext.get("extension")):
                if isinstance(part, Mapping) and part.get("url") == "source" and isinstance(part.get("valueCode"), str):
                    source = part["valueCode"]
                elif isinstance(part, Mapping) and part.get("url") == "author":
                    author = True
            return source, author
    return None


def origin_extension(source: str, practitioner: str | None = None) -> Json:
    """An information-origin extension; ``practitioner`` (a reference) is the author of manual/override answers."""
    return origin_parts(source, practitioner if source not in AUTO else None)


def set_origin(answer: dict[str, Any], source: str, practitioner: str | None = None) -> None:
    """Replace ``answer``'s information-origin."""
    others = [e for e in _list(answer.get("extension")) if not (isinstance(e, Mapping) and e.get("url") == ORIGIN)]
    answer["extension"] = [origin_extension(source, practitioner), *others]


def origin_issues(response: Mapping[str, Any], version: Version = "2.2") -> list[Issue]:
    """information-origin 1..1 on every answer, a code of ``version``, and dtrx-1 (author iff not automatic)."""
    issues: list[Issue] = []
    for _, where, answer in iter_answers(response):
        origin = origin_of(answer)
        if origin is None:
            issues.append(Issue(where, "answer has no information-origin", "information-origin"))
            continue
        source, author = origin
        if source not in SOURCES[version]:
            issues.append(Issue(f"{where}.extension('information-origin').source",
                                f"origin source {source!r} is not a DTR {version} code", "information-origin"))
        elif source in AUTO and author:
            issues.append(Issue(where, "an automatic answer must not name an author", "dtrx-1"))
        elif source not in AUTO and not author:
            issues.append(Issue(where, f"a {source} answer must name its author", "dtrx-1"))
    return issues


def _extension_refs(response: Mapping[str, Any], url: str) -> list[str]:
    out: list[str] = []
    for ext in _list(response.get("extension")):
        if isinstance(ext, Mapping) and ext.get("url") == url:
            ref = ext.get("valueReference")
            if isinstance(ref, Mapping) and isinstance(ref.get("reference"), str):
                out.append(ref["reference"])
    return out


def check_response(response: Any, version: Version = "2.2") -> list[Issue]:
    """Problems with a DTR QuestionnaireResponse (``dtr-questionnaireresponse`` of ``version``)."""
    if not isinstance(response, Mapping) or response.get("resourceType") != "QuestionnaireResponse":
        return [Issue("resourceType", "not a QuestionnaireResponse", "structure")]
    issues: list[Issue] = []
    where = "QuestionnaireResponse"
    for element in ("questionnaire", "subject", "status"):
        if not response.get(element):
            issues.append(Issue(f"{where}.{element}", f"{element} is required", "cardinality"))
    for element in ("basedOn", "partOf"):
        if response.get(element):
            issues.append(Issue(f"{where}.{element}", f"{element} is not allowed (0..0)", "cardinality"))
    intended = [e for e in _list(response.get("extension")) if isinstance(e, Mapping) and e.get("url") == INTENDED_USE]
    if not intended and version == "2.2":
        issues.append(Issue(f"{where}.extension('intendedUse')", "intendedUse is required (1..*)", "cardinality"))
    coverages = _extension_refs(response, QR_COVERAGE)
    contexts = _extension_refs(response, QR_CONTEXT)
    if version == "2.2":
        if not coverages:
            issues.append(Issue(f"{where}.extension('qr-coverage')", "qr-coverage is required (1..*)",
                                "cardinality"))
        for ref in contexts:
            kind = _ref_type(ref)
            if kind == "Coverage":
                issues.append(Issue(f"{where}.extension('qr-context')", "in DTR 2.2 the Coverage goes in qr-coverage, "
                                    "not qr-context", "version"))
            elif kind is not None and kind not in CONTEXT_TYPES:
                issues.append(Issue(f"{where}.extension('qr-context')", f"qr-context cannot be a {kind}", "type"))
    elif len(contexts) < 2 or not any(_ref_type(r) == "Coverage" for r in contexts):
        issues.append(Issue(f"{where}.extension('qr-context')", "DTR 2.0.1 needs qr-context for the Coverage and "
                            "the order (2..*)", "cardinality"))
    author = response.get("author")
    author_ref = author.get("reference") if isinstance(author, Mapping) else None
    author_kind = _ref_type(author_ref) if isinstance(author_ref, str) else None
    if author_kind is not None and author_kind not in AUTHOR_TYPES:
        issues.append(Issue(f"{where}.author", f"author cannot be a {author_kind}", "type"))
    issues += origin_issues(response, version)
    return issues


def _convert_sources(response: Json, version: Version) -> None:
    for _, answer in _answers(response):
        origin = origin_of(answer)
        if origin is None:
            continue
        source = origin[0]
        new = {"2.0.1": {"auto-client": "auto", "auto-server": "auto"}, "2.2": {"auto": "auto-client"}}[version] \
            .get(source or "")
        if new:
            for ext in _list(answer.get("extension")):
                if isinstance(ext, dict) and ext.get("url") == ORIGIN:
                    for part in _list(ext.get("extension")):
                        if isinstance(part, dict) and part.get("url") == "source":
                            part["valueCode"] = new


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def finish_response(response: Mapping[str, Any], *, coverage: str | Sequence[str], orders: Sequence[str] = (),
                    intended_use: Sequence[Mapping[str, Any]] | str = "withpa",
                    status: Literal["completed", "in-progress"] = "completed", author: str | None = None,
                    authored: datetime | None = None, questionnaire: str | None = None,
                    default_origin: str | None = None, version: Version = "2.2") -> Json:
    """A copy of ``response`` completed as a DTR QuestionnaireResponse; :class:`ProfileError` if it cannot be.

    ``coverage`` and ``orders`` are references (``Coverage/1``, ``ServiceRequest/2``); ``intended_use`` is a CRD
    DocReason code (``withpa``, ``withorder``, ``withclaim``, ``retain-doc``) or CodeableConcepts. Origin codes
    are converted to ``version``'s; answers without an origin get ``default_origin`` when given (with ``author``
    as the practitioner for manual/override), else they are reported.
    """
    out = copy.deepcopy(dict(response))
    coverages = [coverage] if isinstance(coverage, str) else list(coverage)
    concepts = [{"coding": [{"system": CRD_TEMP, "code": intended_use}]}] if isinstance(intended_use, str) \
        else [copy.deepcopy(dict(c)) for c in intended_use]
    managed = {QR_COVERAGE, QR_CONTEXT, INTENDED_USE}
    kept = [e for e in _list(out.get("extension")) if not (isinstance(e, Mapping) and e.get("url") in managed)]
    if version == "2.2":
        links = [{"url": QR_COVERAGE, "valueReference": _ref(c)} for c in coverages]
        links += [{"url": QR_CONTEXT, "valueReference": _ref(o)} for o in orders]
    else:
        links = [{"url": QR_CONTEXT, "valueReference": _ref(r)} for r in [*orders, *coverages]]
    links += [{"url": INTENDED_USE, "valueCodeableConcept": c} for c in concepts]
    out["extension"] = links + kept
    meta = out.setdefault("meta", {})
    profile = f"{PROFILE}|2.0.1" if version == "2.0.1" else PROFILE
    meta["profile"] = [profile, *[p for p in _list(meta.get("profile")) if p.split("|")[0] != PROFILE]]
    if questionnaire:
        out["questionnaire"] = questionnaire
    out["status"] = status
    if author:
        out["author"] = _ref(author)
    out["authored"] = _timestamp(authored or datetime.now(UTC))
    _convert_sources(out, version)
    if default_origin is not None:
        for _, answer in _answers(out):
            if origin_of(answer) is None:
                set_origin(answer, default_origin, author if _ref_type(author or "") == "Practitioner" else None)
    ordered = ["resourceType", "id", "meta", "text", "contained", "extension", "identifier", "questionnaire",
               "status", "subject", "encounter", "authored", "author", "source", "item"]
    out = {k: out[k] for k in ordered if k in out} | {k: v for k, v in out.items() if k not in ordered}
    errors = [i for i in check_response(out, version) if i.severity == "error"]
    if errors:
        raise ProfileError(errors)
    return out


# --- the DTR QR Bundle ---------------------------------------------------------------------------------


def _answer_references(response: Mapping[str, Any]) -> list[tuple[dict[str, Any], str]]:
    found: list[tuple[dict[str, Any], str]] = []
    for _, answer in _answers(response):
        ref = answer.get("valueReference")
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str) and not ref["reference"].startswith("#"):
            found.append((ref, ref["reference"]))
    return found


def _key(resource: Mapping[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def qr_bundle(response: Mapping[str, Any], referenced: Sequence[Mapping[str, Any]] = (), *,
              base: str | None = None, new_id: Callable[[], str] | None = None) -> Json:
    """The DTR QR Bundle (collection): the response first and only, then every answerReference target (dtrb-2).

    Targets are matched by ``Type/id`` (or a full URL ending in it) and must be in ``referenced``. With ``base``
    the fullUrls are RESTful (``base/Type/id``) and references stay; otherwise they are fresh ``urn:uuid``
    values and the copied response's answerReferences are pointed at them.
    """
    make_id = new_id or (lambda: str(uuid.uuid4()))
    if response.get("resourceType") != "QuestionnaireResponse":
        raise ProfileError([Issue("resourceType", "qr_bundle needs a QuestionnaireResponse", "dtrb-2")])
    qr = copy.deepcopy(dict(response))
    by_key = {_key(r): r for r in referenced}
    entries: list[Json] = []
    urls: dict[str, str] = {}
    missing: list[Issue] = []
    for ref_node, reference in _answer_references(qr):
        key = "/".join(reference.split("/_history/")[0].rstrip("/").split("/")[-2:])
        target = by_key.get(key)
        if target is None:
            missing.append(Issue("QuestionnaireResponse.item.answer.valueReference",
                                 f"answerReference target {key} was not given", "spec-156"))
            continue
        if target.get("resourceType") == "QuestionnaireResponse":
            missing.append(Issue("QuestionnaireResponse.item.answer.valueReference",
                                 "the QR Bundle may hold only one QuestionnaireResponse", "dtrb-2"))
            continue
        if key not in urls:
            urls[key] = f"{base.rstrip('/')}/{key}" if base else f"urn:uuid:{make_id()}"
            entries.append({"fullUrl": urls[key], "resource": copy.deepcopy(dict(target))})
        if not base:
            ref_node["reference"] = urls[key]
    if missing:
        raise ProfileError(missing)
    qr_url = f"{base.rstrip('/')}/QuestionnaireResponse/{qr['id']}" if base and qr.get("id") \
        else f"urn:uuid:{make_id()}"
    return {"resourceType": "Bundle", "meta": {"profile": [QR_BUNDLE_PROFILE]}, "type": "collection",
            "timestamp": _timestamp(datetime.now(UTC)),
            "entry": [{"fullUrl": qr_url, "resource": qr}, *entries]}


def check_qr_bundle(bundle: Any) -> list[Issue]:
    """dtrb-2 and spec-156: a collection, the QR first and only, every answerReference target inside."""
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        return [Issue("resourceType", "a DTR QR Bundle must be a Bundle", "DTR-QRBundle")]
    issues: list[Issue] = []
    if bundle.get("type") != "collection":
        issues.append(Issue("Bundle.type", "a DTR QR Bundle is a 'collection'", "DTR-QRBundle"))
    entries = [e for e in _list(bundle.get("entry")) if isinstance(e, Mapping)]
    resources: list[Mapping[str, Any]] = [r if isinstance(r := e.get("resource"), Mapping) else {} for e in entries]
    if not resources or resources[0].get("resourceType") != "QuestionnaireResponse":
        issues.append(Issue("Bundle.entry[0].resource", "the QuestionnaireResponse must come first", "dtrb-2"))
        return issues
    extra = [n for n, r in enumerate(resources) if n and r.get("resourceType") == "QuestionnaireResponse"]
    for n in extra:
        issues.append(Issue(f"Bundle.entry[{n}].resource", "only one QuestionnaireResponse is allowed", "dtrb-2"))
    known = {e.get("fullUrl") for e in entries} | {_key(r) for r in resources}
    for _, reference in _answer_references(resources[0]):
        key = "/".join(reference.split("/")[-2:])
        if reference not in known and key not in known:
            issues.append(Issue("Bundle.entry[0].resource.item.answer.valueReference",
                                "answerReference target is not in the Bundle", "spec-156"))
    return issues


__all__ = [
    "AUTO",
    "INTENDED_USE",
    "ORIGIN",
    "PROFILE",
    "QR_BUNDLE_PROFILE",
    "QR_CONTEXT",
    "QR_COVERAGE",
    "SOURCES",
    "Version",
    "check_qr_bundle",
    "check_response",
    "finish_response",
    "iter_answers",
    "origin_extension",
    "origin_issues",
    "origin_of",
    "qr_bundle",
    "set_origin",
]

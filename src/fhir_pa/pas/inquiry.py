"""``Claim/$inquire``: build the PAS Inquiry Request Bundle for a request we sent, and read every answer shape.

The inquiry is query by example (notes/pas.md §2.9): a Claim Inquiry naming the patient, the provider and the
insurer (all three required for the X12 278 inquiry), the services asked about, and the numbers the payer gave
us (preAuthRef as Claim-level ``authorizationNumber``, item pend numbers as ``administrationReferenceNumber``).
The inquiry's own ``Claim.identifier`` is a fresh trace number, never a search key. Diagnoses and supporting
information are left out: several diagnoses would fan out into several 278 inquiries.

Answers come as a Parameters with 0..* Inquiry Response Bundles (named ``return``, or ``responseBundle`` as in
the IG example), a bare Bundle (2.0.1 and the reference implementation), or 404 with an OperationOutcome.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir_pa.config import Sender
from fhir_pa.errors import FhirPaError, InputError, InvalidResponse
from fhir_pa.pas import codes
from fhir_pa.pas.decision import PasDecision, parse_response
from fhir_pa.pas.references import BundleIndex, full_url_resolver, iter_references
from fhir_pa.pas.update_diff import rewrite_references

Json = dict[str, Any]

INQUIRY_BUNDLE = codes.profile("pas-inquiry-request-bundle")
CLAIM_INQUIRY = codes.profile("claim-inquiry")
EXT_AUTHORIZATION_NUMBER = codes.extension("authorizationNumber")
EXT_ADMINISTRATION_REFERENCE = codes.extension("administrationReferenceNumber")
#: Item extensions an inquiry keeps from the request: what was asked for, not how it changed since.
_ITEM_EXTENSIONS = frozenset({codes.EXT_REQUEST_TYPE, codes.EXT_CERTIFICATION_TYPE})
_CLAIM_KEYS = ("resourceType", "meta", "extension", "identifier", "status", "type", "use", "patient", "created",
               "insurer", "provider", "priority", "insurance", "item")


@dataclass(frozen=True)
class InquiryRequest:
    bundle: Json
    bundle_identifier: str
    claim_identifier: str


@dataclass(frozen=True)
class InquiryResult:
    """What ``$inquire`` answered: one decision per matching prior authorization (newest state first as sent)."""

    not_found: bool
    decisions: tuple[PasDecision, ...]
    bundles: tuple[Json, ...]
    #: ``return``, ``responseBundle`` (parameter names), ``bare`` (a Bundle), or ``not-found``.
    shape: str
    warnings: tuple[str, ...]


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _claim_entry(original: Mapping[str, Any]) -> Mapping[str, Any]:
    entries = original.get("entry")
    first = entries[0] if isinstance(entries, list) and entries and isinstance(entries[0], Mapping) else None
    claim = first.get("resource") if first is not None else None
    if first is None or not isinstance(claim, Mapping) or claim.get("resourceType") != "Claim":
        raise InputError("the stored request has no Claim as its first entry", path="Bundle.entry[0].resource")
    return first


def _item(item: Mapping[str, Any], administration_ref: str | None) -> Json:
    extensions = [copy.deepcopy(dict(e)) for e in item.get("extension") or []
                  if isinstance(e, Mapping) and e.get("url") in _ITEM_EXTENSIONS]
    if administration_ref:
        extensions.append({"url": EXT_ADMINISTRATION_REFERENCE, "valueString": administration_ref})
    out: Json = {"extension": extensions, "sequence": item.get("sequence")} if extensions else \
        {"sequence": item.get("sequence")}
    for key in ("productOrService", "modifier", "servicedDate", "servicedPeriod", "locationCodeableConcept",
                "quantity"):
        if key in item:
            out[key] = copy.deepcopy(item[key])
    return out


def _reachable(claim_entry: Json, others: list[Any]) -> list[Json]:
    """The inquiry Claim's entry, then every entry of the original it reaches (transitively), each once."""
    entries: list[Any] = [claim_entry, *others]
    index = BundleIndex(entries)
    keep, queue = {0}, deque([0])
    while queue:
        position = queue.popleft()
        entry = entries[position]
        holder = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        for _, reference in iter_references(entry.get("resource"), ""):
            for target in index.resolve(reference, holder):
                if target not in keep:
                    keep.add(target)
                    queue.append(target)
    return [copy.deepcopy(dict(entries[i])) for i in sorted(keep)]


def build_inquiry_bundle(original: Mapping[str, Any], *, sender: Sender | None = None,
                         preauth_ref: str | None = None, administration_refs: Mapping[int, str] | None = None,
                         now: datetime | None = None) -> InquiryRequest:
    """The Inquiry Request Bundle asking where the request ``original`` (the PAS request Bundle) stands."""
    sender = sender or Sender()
    first = _claim_entry(original)
    claim: Mapping[str, Any] = first["resource"]
    for element in ("patient", "provider", "insurer"):
        if not isinstance(claim.get(element), Mapping):
            raise InputError(f"the request's Claim names no {element}, which every inquiry needs",
                             path=f"Bundle.entry[0].resource.{element}")
    refs = administration_refs or {}
    items = [_item(item, refs.get(item["sequence"]) if isinstance(item.get("sequence"), int) else None)
             for item in claim.get("item") or [] if isinstance(item, Mapping)]
    if not items:
        raise InputError("the request's Claim has no items to inquire about", path="Bundle.entry[0].resource.item")
    kept = (codes.EXT_TRANSMISSION_IDS, codes.EXT_LEVEL_OF_SERVICE)
    extensions = [copy.deepcopy(dict(e)) for e in claim.get("extension") or []
                  if isinstance(e, Mapping) and e.get("url") in kept]
    if preauth_ref:
        extensions.append({"url": EXT_AUTHORIZATION_NUMBER, "valueString": preauth_ref})
    moment = now or datetime.now(UTC)
    trace = uuid.uuid4().hex
    inquiry: Json = {
        **{key: copy.deepcopy(claim[key]) for key in _CLAIM_KEYS if key in claim},
        "meta": {"profile": [CLAIM_INQUIRY]},
        "identifier": [{"system": f"urn:trnorg:{sender.trn_originator}", "value": trace}],
        "created": _stamp(moment),
        "item": items,
    }
    if extensions:
        inquiry["extension"] = extensions
    else:
        inquiry.pop("extension", None)
    inquiry = {key: inquiry[key] for key in _CLAIM_KEYS if key in inquiry}
    entries = original.get("entry")
    # The inquiry gets a urn:uuid fullUrl, against which relative references no longer resolve: point each one
    # at its target's fullUrl in the original request.
    holder = first.get("fullUrl") if isinstance(first.get("fullUrl"), str) else None
    inquiry = rewrite_references(inquiry, full_url_resolver(BundleIndex(entries if isinstance(entries, list) else []),
                                                            holder))
    claim_entry: Json = {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": inquiry}
    others = [e for e in (entries[1:] if isinstance(entries, list) else [])
              if isinstance(e, Mapping) and e is not first]
    bundle_id = str(uuid.uuid4())
    bundle: Json = {
        "resourceType": "Bundle",
        "meta": {"profile": [INQUIRY_BUNDLE]},
        "identifier": {"system": sender.submitter_system, "value": bundle_id},
        "type": "collection",
        "timestamp": _stamp(moment),
        "entry": _reachable(claim_entry, others),
    }
    return InquiryRequest(bundle, f"{sender.submitter_system}|{bundle_id}",
                          f"urn:trnorg:{sender.trn_originator}|{trace}")


def _outcome_text(resource: Mapping[str, Any]) -> str:
    issues = resource.get("issue")
    first = issues[0] if isinstance(issues, list) and issues and isinstance(issues[0], Mapping) else {}
    text = first.get("diagnostics") or (first.get("details") or {}).get("text") or first.get("code") or "no detail"
    return " ".join(str(text).split())[:300]


def _load(body: bytes) -> Mapping[str, Any] | None:
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidResponse("the $inquire answer is not JSON", path="$") from None
    if not isinstance(data, Mapping):
        raise InvalidResponse("the $inquire answer is not a JSON object", path="$")
    return data


def parse_inquiry_response(status: int, body: bytes) -> InquiryResult:
    """Read any ``$inquire`` answer; :class:`InvalidResponse` when a 2xx answer holds nothing readable."""
    data = _load(body)
    if status == 404:
        said = (_outcome_text(data),) if data and data.get("resourceType") == "OperationOutcome" else ()
        return InquiryResult(True, (), (), "not-found", said)
    if not 200 <= status < 300:
        raise InvalidResponse(f"the $inquire answer has HTTP status {status}")
    if data is None:
        raise InvalidResponse("the $inquire answer is empty", path="$")
    warnings: list[str] = []
    found: list[tuple[str, Json]] = []
    kind = data.get("resourceType")
    if kind == "Parameters":
        for position, parameter in enumerate(data.get("parameter") or []):
            resource = parameter.get("resource") if isinstance(parameter, Mapping) else None
            if not isinstance(resource, Mapping):
                continue
            if resource.get("resourceType") == "Bundle":
                found.append((str(parameter.get("name") or "return"), dict(resource)))
            elif resource.get("resourceType") == "OperationOutcome":
                warnings.append(f"Parameters.parameter[{position}]: {_outcome_text(resource)}")
    elif kind == "Bundle":
        found.append(("bare", dict(data)))
    elif kind == "OperationOutcome":
        return InquiryResult(True, (), (), "not-found", (_outcome_text(data),))
    else:
        raise InvalidResponse(f"the $inquire answer is a {kind!r}, not Parameters or a Bundle", path="resourceType")
    decisions: list[PasDecision] = []
    bundles: list[Json] = []
    for position, (_, bundle) in enumerate(found):
        try:
            decisions.append(parse_response(bundle, source=f"$inquire result {position + 1}"))
        except FhirPaError as exc:
            warnings.append(exc.one_line())
            continue
        bundles.append(bundle)
    if found and not decisions:
        raise InvalidResponse(f"no $inquire result could be read: {warnings[-1]}", path="Parameters.parameter")
    shape = found[0][0] if found else "return"
    return InquiryResult(not decisions, tuple(decisions), tuple(bundles), shape, tuple(warnings))


__all__ = ["InquiryRequest", "InquiryResult", "build_inquiry_bundle", "parse_inquiry_response"]

"""The PAS request rules that are not a cardinality or a pattern: written as code, named as the IG and
the Inferno PAS client suite name them, so a failure message points to the rule a tester would quote."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from fhir_pa.errors import Issue
from fhir_pa.pas import codes
from fhir_pa.pas.references import BundleIndex, iter_references

UUID_V4_URN = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.I)
HTTP_URL = re.compile(r"^https?://\S+$")
FULL_DATE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")

Json = Mapping[str, Any]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _codes(concept: Any) -> set[str]:
    if not isinstance(concept, Mapping):
        return set()
    codings = _list(concept.get("coding"))
    return {c["code"] for c in codings if isinstance(c, Mapping) and isinstance(c.get("code"), str)}


def _ext(node: Any, url: str) -> list[Json]:
    if not isinstance(node, Mapping):
        return []
    return [e for e in _list(node.get("extension")) if isinstance(e, Mapping) and e.get("url") == url]


def full_urls(entries: list[Any]) -> list[Issue]:
    """spec-16/17 and Inferno: every fullUrl is an http(s) URL or a urn:uuid v4, and none repeats."""
    issues: list[Issue] = []
    seen: Counter[str] = Counter()
    for index, entry in enumerate(entries):
        full_url = entry.get("fullUrl") if isinstance(entry, Mapping) else None
        if not isinstance(full_url, str):
            continue  # cardinality of fullUrl is a profile rule, reported there
        seen[full_url] += 1
        if not (UUID_V4_URN.match(full_url) or HTTP_URL.match(full_url)):
            issues.append(Issue(f"Bundle.entry[{index}].fullUrl", "fullUrl must be an http(s) URL or a "
                                "urn:uuid with an RFC 4122 version-4 UUID", "spec-16"))
    for full_url, count in seen.items():
        if count > 1:
            first = next(i for i, e in enumerate(entries) if isinstance(e, Mapping) and e.get("fullUrl") == full_url)
            issues.append(Issue(f"Bundle.entry[{first}].fullUrl", f"fullUrl is used by {count} entries",
                                "spec-14"))
    return issues


def claim_first(entries: list[Any]) -> list[Issue]:
    first = entries[0].get("resource") if entries and isinstance(entries[0], Mapping) else None
    if not isinstance(first, Mapping) or first.get("resourceType") != "Claim":
        return [Issue("Bundle.entry[0].resource", "the first entry must be the Claim", "ClaimFirst")]
    return []


def references_resolve(index: BundleIndex, *, skip: Iterable[str] = ()) -> list[Issue]:
    """spec-13/14/18 (Inferno follows them recursively): every reference resolves to exactly one entry.

    ``skip`` holds reference locations that must not be followed (a Claim Update's grandparent Claim).
    """
    skipped = set(skip)
    issues: list[Issue] = []
    for position, entry in enumerate(index.entries):
        if not isinstance(entry, Mapping):
            continue
        holder = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        for path, reference in iter_references(entry.get("resource"), f"Bundle.entry[{position}].resource"):
            if path in skipped:
                continue
            found = index.resolve(reference, holder)
            if not found:
                issues.append(Issue(path, "reference does not resolve to any entry of the Bundle", "spec-13"))
            elif len(found) > 1:
                issues.append(Issue(path, f"reference resolves to {len(found)} entries; each resource must be "
                                    "in the Bundle exactly once", "spec-14"))
    return issues


def unique_sequences(claim: Json, where: str) -> list[Issue]:
    """spec-22 (supportingInfo) and the trace-key rule for items, care team and diagnoses."""
    issues: list[Issue] = []
    for element in ("item", "supportingInfo", "careTeam", "diagnosis"):
        counts = Counter(e.get("sequence") for e in _list(claim.get(element)) if isinstance(e, Mapping))
        for sequence, count in counts.items():
            if sequence is not None and count > 1:
                rule = "spec-22" if element == "supportingInfo" else "unique-sequence"
                issues.append(Issue(f"{where}.{element}", f"sequence {sequence} is used {count} times", rule))
    return issues


def sequence_links(claim: Json, where: str) -> list[Issue]:
    """item.careTeamSequence / diagnosisSequence / informationSequence must point at existing entries."""
    targets = {
        "careTeamSequence": "careTeam",
        "diagnosisSequence": "diagnosis",
        "informationSequence": "supportingInfo",
    }
    known = {element: {e.get("sequence") for e in _list(claim.get(element)) if isinstance(e, Mapping)}
             for element in targets.values()}
    issues: list[Issue] = []
    for i, item in enumerate(_list(claim.get("item"))):
        if not isinstance(item, Mapping):
            continue
        for link, element in targets.items():
            for value in _list(item.get(link)):
                if value not in known[element]:
                    issues.append(Issue(f"{where}.item[{i}].{link}", f"refers to {element} sequence {value}, "
                                        "which does not exist", "sequence-link"))
    return issues


def _date_issue(value: Any, path: str) -> list[Issue]:
    if value is None:
        return []
    if not isinstance(value, str) or not FULL_DATE.match(value):
        return [Issue(path, "must be a full date YYYY-MM-DD", "FullDateRule")]
    return []


def full_dates(claim: Json, where: str) -> list[Issue]:
    issues: list[Issue] = []
    for i, item in enumerate(_list(claim.get("item"))):
        if not isinstance(item, Mapping):
            continue
        issues += _date_issue(item.get("servicedDate"), f"{where}.item[{i}].servicedDate")
        period = item.get("servicedPeriod")
        if isinstance(period, Mapping):
            for edge in ("start", "end"):
                issues += _date_issue(period.get(edge), f"{where}.item[{i}].servicedPeriod.{edge}")
    for i, info in enumerate(_list(claim.get("supportingInfo"))):
        if not isinstance(info, Mapping) or not (_codes(info.get("category")) & {"patientEvent", "admissionDates",
                                                                                  "dischargeDates"}):
            continue
        issues += _date_issue(info.get("timingDate"), f"{where}.supportingInfo[{i}].timingDate")
        period = info.get("timingPeriod")
        if isinstance(period, Mapping):
            for edge in ("start", "end"):
                issues += _date_issue(period.get(edge), f"{where}.supportingInfo[{i}].timingPeriod.{edge}")
    accident = claim.get("accident")
    if isinstance(accident, Mapping):
        issues += _date_issue(accident.get("date"), f"{where}.accident.date")
    for i, dx in enumerate(_list(claim.get("diagnosis"))):
        for ext in _ext(dx, codes.extension("diagnosisRecordedDate")):
            issues += _date_issue(ext.get("valueDate"), f"{where}.diagnosis[{i}].extension.valueDate")
    return issues


def immediate_level_of_care(claim: Json, where: str) -> list[Issue]:
    """ImmediateLevelOfCare: an immediate appeal (certificationType 1) needs the Claim's levelOfServiceCode."""
    if _ext(claim, codes.EXT_LEVEL_OF_SERVICE):
        return []
    issues: list[Issue] = []
    for i, item in enumerate(_list(claim.get("item"))):
        for ext in _ext(item, codes.EXT_CERTIFICATION_TYPE):
            if "1" in _codes(ext.get("valueCodeableConcept")):
                issues.append(Issue(f"{where}.item[{i}]", "certificationType 1 (immediate appeal) requires the "
                                    "Claim levelOfServiceCode extension", "ImmediateLevelOfCare"))
    return issues


def quantity_units(node: Any, path: str) -> list[Issue]:
    """PAS Quantity prof-3: a coded unit must come from X12 673."""
    if isinstance(node, Mapping) and "code" in node and node.get("system") != codes.X12_UNITS:
        return [Issue(path, f"a Quantity code must use the X12 673 system {codes.X12_UNITS}", "prof-3")]
    return []


def self_beneficiary(coverage: Json, where: str) -> list[Issue]:
    relationship = coverage.get("relationship")
    is_self = bool(_codes(relationship) & {"self", "18"})
    if not is_self and not isinstance(coverage.get("subscriber"), Mapping):
        return [Issue(f"{where}.subscriber", "a subscriber is required when the relationship is not self",
                      "self-beneficiary")]
    return []


def full_birth_date(patient: Json, where: str) -> list[Issue]:
    return _date_issue(patient.get("birthDate"), f"{where}.birthDate")

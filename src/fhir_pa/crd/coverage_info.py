"""Read and check the CRD ``ext-coverage-information`` extension: the payer's answer to "is this covered, does it
need prior auth, what documentation?".

One :class:`CoverageInformation` per repetition of the extension. Three dialects are read onto the same type:

- CRD 2.2 (and 2.1): the shape the invariants q1..q9 describe; ``contact`` is a ContactDetail.
- CRD 2.0.1 and older: ``contact`` is a ContactPoint; ``doc-needed`` ``both`` means clinical + admin.
- The payer RI's pre-2.0 shape (``legacy=True``): sub-extension ``coverageInfo`` codes (``covered``,
  ``not-covered``, ``prior-auth``, ``clinical``, ``admin``) and ``identifier`` in place of ``covered``,
  ``pa-needed``, ``doc-needed`` and ``coverage-assertion-id``.

Reading is lenient (warnings, never exceptions); :func:`check_coverage_information` says what breaks CRD 2.2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fhir_pa.errors import Issue
from fhir_pa.pas.decision_fields import FieldReader, Json
from fhir_pa.pas.decision_types import Coding, Period, Quantity

EXT_COVERAGE_INFORMATION = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
#: CRD's temporary code system: reasons (``technical``, ``auth-out-network``...), detail codes, ≤2.1 card types.
CRD_TEMP = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
#: Where the coverage-assertion reasons are maintained now (same codes).
V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
#: The CRD 1.x code system of the RI's ``coverageInfo`` codes.
COVERAGE_GUIDANCE = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/coverageGuidance"

COVERED_CODES = frozenset({"covered", "not-covered", "conditional", "indeterminate"})
PA_NEEDED_CODES = frozenset({"no-auth", "auth-needed", "performpa", "satisfied", "conditional", "indeterminate"})
DOC_NEEDED_CODES = frozenset({"clinical", "admin", "patient", "conditional", "indeterminate"})
DOC_PURPOSE_CODES = frozenset({"withpa", "withclaim", "withorder", "retain-doc", "OTH"})
INFO_NEEDED_CODES = frozenset({"performer", "location", "timeframe", "contract-window", "detail-code", "OTH"})
#: The coverageAssertionReasons value set (q7: a reason coded outside it needs text).
ASSERTION_REASONS = frozenset({"gold-card", "no-member-found", "no-active-coverage", "coverage-not-found",
                               "auth-out-network", "technical"})
LEGACY_CODES = frozenset({"covered", "not-covered", "prior-auth", "clinical", "admin", "conditional"})

_KNOWN = frozenset({"coverage", "covered", "pa-needed", "doc-needed", "doc-purpose", "info-needed", "billingCode",
                    "reason", "detail", "dependency", "questionnaire", "date", "coverage-assertion-id",
                    "satisfied-pa-id", "contact", "expiry-date", "response", "coverageInfo", "identifier"})


@dataclass(frozen=True)
class Reason:
    """Why the payer answered as it did: a coverageAssertionReasons code and/or free text."""

    system: str | None
    code: str | None
    display: str | None
    text: str | None


@dataclass(frozen=True)
class Detail:
    """A ``detail`` name-value pair (copay, allowed quantity, policy link, instructions...)."""

    category: str | None
    code: tuple[Coding, ...]
    value: bool | str | Quantity | Period | None
    qualification: str | None


@dataclass(frozen=True)
class Telecom:
    system: str | None
    value: str | None
    use: str | None


@dataclass(frozen=True)
class Contact:
    """A ContactDetail (CRD 2.2); a ≤2.1 ContactPoint is read as a contact with one telecom and no name."""

    name: str | None
    telecom: tuple[Telecom, ...]


@dataclass(frozen=True)
class CoverageInformation:
    """One repetition of ``ext-coverage-information``. Codes are kept as sent (unknown ones too)."""

    path: str  # FHIRPath of the extension, e.g. "ServiceRequest.extension[0]"
    coverage: str | None  # Reference.reference of the Coverage on the client's server
    covered: str | None
    pa_needed: str | None
    doc_needed: tuple[str, ...]
    doc_purpose: tuple[str, ...]
    info_needed: tuple[str, ...]
    billing_codes: tuple[Coding, ...]
    reasons: tuple[Reason, ...]
    details: tuple[Detail, ...]
    dependencies: tuple[str, ...]
    questionnaires: tuple[str, ...]  # canonicals, possibly "url|version"
    date: str | None
    coverage_assertion_id: str | None
    satisfied_pa_id: str | None
    contacts: tuple[Contact, ...]
    expiry_date: str | None
    legacy: bool = False  # read from the RI's pre-2.0 shape
    legacy_codes: tuple[str, ...] = ()  # the RI's coverageInfo codes, as sent


def is_coverage_information(extension: Any) -> bool:
    """Whether ``extension`` is one repetition of ext-coverage-information (by url)."""
    return isinstance(extension, Mapping) and extension.get("url") == EXT_COVERAGE_INFORMATION


def read_coverage_information(resource: Json, where: str, reader: FieldReader) -> tuple[CoverageInformation, ...]:
    """Every ``ext-coverage-information`` on ``resource`` (``where`` is its FHIRPath, e.g. "ServiceRequest")."""
    return tuple(_Reader(reader).read(ext, path)
                 for path, ext in reader.extensions(resource, where, EXT_COVERAGE_INFORMATION))


def coverage_information_of(resource: Mapping[str, Any]) -> tuple[tuple[CoverageInformation, ...], tuple[str, ...]]:
    """The coverage information on one resource and the warnings reading it produced."""
    reader = FieldReader()
    kind = resource.get("resourceType")
    found = read_coverage_information(resource, kind if isinstance(kind, str) else "resource", reader)
    return found, reader.warnings


class _Reader:
    def __init__(self, reader: FieldReader) -> None:
        self.r = reader

    def read(self, ext: Json, path: str) -> CoverageInformation:
        parts: dict[str, list[tuple[str, Json]]] = {}
        for part_path, part in self.r.objects(ext, "extension", path):
            url = part.get("url")
            if not isinstance(url, str):
                self.r.warn(f"{part_path} has no url; ignored")
                continue
            if url not in _KNOWN:
                self.r.warn(f"{part_path}: unknown coverage-information part {url!r}; ignored")
            parts.setdefault(url, []).append((part_path, part))
        legacy = "coverageInfo" in parts or ("identifier" in parts and "coverage-assertion-id" not in parts)
        legacy_codes = tuple(c for p, e in parts.get("coverageInfo", []) for c in self.codes(e, p))
        covered = self.one(parts, "covered", self.code)
        pa_needed = self.one(parts, "pa-needed", self.code)
        doc_needed = self.doc_needed(parts)
        if legacy:
            covered, pa_needed, doc_needed = self.legacy(legacy_codes, path, covered, pa_needed, doc_needed)
        assertion_id = self.one(parts, "coverage-assertion-id", self.text)
        if assertion_id is None and "identifier" in parts:
            assertion_id = self.one(parts, "identifier", self.text)
        return CoverageInformation(
            path=path,
            coverage=self.one(parts, "coverage", self.reference),
            covered=covered,
            pa_needed=pa_needed,
            doc_needed=doc_needed,
            doc_purpose=self.many(parts, "doc-purpose", self.code),
            info_needed=self.many(parts, "info-needed", self.code),
            billing_codes=self.many(parts, "billingCode", self.coding),
            reasons=self.many(parts, "reason", self.reason),
            details=self.many(parts, "detail", self.detail),
            dependencies=self.many(parts, "dependency", self.reference),
            questionnaires=self.many(parts, "questionnaire", self.canonical),
            date=self.one(parts, "date", self.date),
            coverage_assertion_id=assertion_id,
            satisfied_pa_id=self.one(parts, "satisfied-pa-id", self.text),
            contacts=self.many(parts, "contact", self.contact),
            expiry_date=self.one(parts, "expiry-date", self.date),
            legacy=legacy,
            legacy_codes=legacy_codes,
        )

    # -- cardinality --------------------------------------------------------------------------------

    def one(self, parts: dict[str, list[tuple[str, Json]]], url: str, read: Any) -> Any:
        found = [v for p, e in parts.get(url, []) for v in [read(e, p)] if v is not None]
        if len(found) > 1:
            self.r.warn(f"{parts[url][0][0]} is repeated but allows one value; the first is used")
        return found[0] if found else None

    def many(self, parts: dict[str, list[tuple[str, Json]]], url: str, read: Any) -> tuple[Any, ...]:
        return tuple(v for p, e in parts.get(url, []) for v in [read(e, p)] if v is not None)

    def doc_needed(self, parts: dict[str, list[tuple[str, Json]]]) -> tuple[str, ...]:
        codes: list[str] = []
        for path, ext in parts.get("doc-needed", []):
            code = self.code(ext, path)
            if code == "both":  # CRD 2.0.1: 0..1 with "both"
                codes += ["clinical", "admin"]
            elif code == "no-doc":  # CRD 1.x
                self.r.warn(f"{path}: 'no-doc' is a CRD 1.x code; read as no documentation needed")
            elif code is not None:
                codes.append(code)
        return tuple(dict.fromkeys(codes))

    def legacy(self, codes: tuple[str, ...], path: str, covered: str | None, pa_needed: str | None,
               doc_needed: tuple[str, ...]) -> tuple[str | None, str | None, tuple[str, ...]]:
        """Map the RI's coverageInfo codes; anything sent in the 2.x parts as well wins."""
        self.r.warn(f"{path} is the payer RI's pre-2.0 coverage-information (coverageInfo/identifier); "
                    "read as CRD 2.x codes")
        for code in codes:
            if code not in LEGACY_CODES:
                self.r.warn(f"{path}: coverageInfo code {code!r} is not a known legacy code; ignored")
        if covered is None:
            if "not-covered" in codes:
                covered = "not-covered"
            elif "conditional" in codes:
                covered = "conditional"
            elif "covered" in codes or "prior-auth" in codes:
                covered = "covered"  # prior-auth: "coverage is possible with prior authorization"
        if pa_needed is None and covered != "not-covered":
            if "prior-auth" in codes:
                pa_needed = "auth-needed"
            elif "covered" in codes:
                pa_needed = "no-auth"  # "regular coverage applies"
        if not doc_needed:
            doc_needed = tuple(c for c in ("clinical", "admin") if c in codes)
        return covered, pa_needed, doc_needed

    # -- values -------------------------------------------------------------------------------------

    def code(self, ext: Json, path: str) -> str | None:
        for key in ("valueCode", "valueString"):
            if key in ext:
                return self.r.string(ext, key, path)
        codes = self.codes(ext, path)
        if codes:
            self.r.warn(f"{path} carries a Coding, not a code; its code is used")
            return codes[0]
        self.r.warn(f"{path} has no valueCode; ignored")
        return None

    def codes(self, ext: Json, path: str) -> tuple[str, ...]:
        """Codes of a valueCoding / valueCodeableConcept / valueCode (the RI's coverageInfo uses any)."""
        if "valueCode" in ext:
            code = self.r.string(ext, "valueCode", path)
            return (code,) if code else ()
        coding = self.coding(ext, path, quiet=True)
        if coding is not None:
            return (coding.code,) if coding.code else ()
        concept = self.r.obj(ext, "valueCodeableConcept", path)
        if concept is not None:
            return tuple(c.code for c in self.r.codings(concept, f"{path}.valueCodeableConcept") if c.code)
        return ()

    def text(self, ext: Json, path: str) -> str | None:
        for key in ("valueString", "valueId", "valueCode", "valueUri"):
            if key in ext:
                return self.r.string(ext, key, path)
        identifier = self.r.obj(ext, "valueIdentifier", path)
        if identifier is not None:
            return self.r.string(identifier, "value", f"{path}.valueIdentifier")
        self.r.warn(f"{path} has no valueString; ignored")
        return None

    def date(self, ext: Json, path: str) -> str | None:
        for key in ("valueDate", "valueDateTime", "valueString"):
            if key in ext:
                return self.r.string(ext, key, path)
        self.r.warn(f"{path} has no valueDate; ignored")
        return None

    def reference(self, ext: Json, path: str) -> str | None:
        ref = self.r.obj(ext, "valueReference", path)
        if ref is None:
            self.r.warn(f"{path} has no valueReference; ignored")
            return None
        return self.r.string(ref, "reference", f"{path}.valueReference") or self.r.identifier(
            ref.get("identifier"), f"{path}.valueReference.identifier")

    def canonical(self, ext: Json, path: str) -> str | None:
        for key in ("valueCanonical", "valueUri", "valueUrl", "valueString"):
            if key in ext:
                return self.r.string(ext, key, path)
        self.r.warn(f"{path} has no valueCanonical; ignored")
        return None

    def coding(self, ext: Json, path: str, *, quiet: bool = False) -> Coding | None:
        node = self.r.obj(ext, "valueCoding", path)
        if node is None:
            if not quiet:
                self.r.warn(f"{path} has no valueCoding; ignored")
            return None
        where = f"{path}.valueCoding"
        return Coding(self.r.string(node, "system", where), self.r.string(node, "code", where),
                      self.r.string(node, "display", where))

    def reason(self, ext: Json, path: str) -> Reason | None:
        concept = self.r.obj(ext, "valueCodeableConcept", path)
        if concept is None:
            self.r.warn(f"{path} has no valueCodeableConcept; ignored")
            return None
        where = f"{path}.valueCodeableConcept"
        coding = next((c for c in self.r.codings(concept, where) if c.code), None)
        text = self.r.string(concept, "text", where)
        return Reason(coding.system if coding else None, coding.code if coding else None,
                      coding.display if coding else None, text)

    def detail(self, ext: Json, path: str) -> Detail:
        category: str | None = None
        code: tuple[Coding, ...] = ()
        value: bool | str | Quantity | Period | None = None
        qualification: str | None = None
        for part_path, part in self.r.objects(ext, "extension", path):
            url = part.get("url")
            if url == "category":
                category = self.code(part, part_path)
            elif url == "code":
                concept = self.r.obj(part, "valueCodeableConcept", part_path)
                code = self.r.codings(concept, f"{part_path}.valueCodeableConcept") if concept else ()
            elif url == "value":
                value = self.detail_value(part, part_path)
            elif url == "qualification":
                qualification = self.r.string(part, "valueString", part_path)
        return Detail(category, code, value, qualification)

    def detail_value(self, ext: Json, path: str) -> bool | str | Quantity | Period | None:
        if isinstance(ext.get("valueBoolean"), bool):
            flag: bool = ext["valueBoolean"]
            return flag
        for key in ("valueString", "valueUrl", "valueUri", "valueMarkdown"):
            if key in ext:
                return self.r.string(ext, key, path)
        quantity = self.r.obj(ext, "valueQuantity", path)
        if quantity is not None:
            where = f"{path}.valueQuantity"
            unit = self.r.string(quantity, "unit", where) or self.r.string(quantity, "code", where)
            return Quantity(self.r.number(quantity, "value", where), unit)
        period = self.r.period(ext, "valuePeriod", path)
        if period is None:
            self.r.warn(f"{path} has no boolean, string, url, Quantity or Period value; ignored")
        return period

    def telecom(self, node: Json, path: str) -> Telecom:
        return Telecom(self.r.string(node, "system", path), self.r.string(node, "value", path),
                       self.r.string(node, "use", path))

    def contact(self, ext: Json, path: str) -> Contact | None:
        detail = self.r.obj(ext, "valueContactDetail", path)
        if detail is not None:
            where = f"{path}.valueContactDetail"
            return Contact(self.r.string(detail, "name", where),
                           tuple(self.telecom(t, p) for p, t in self.r.objects(detail, "telecom", where)))
        point = self.r.obj(ext, "valueContactPoint", path)
        if point is not None:  # CRD ≤ 2.1
            return Contact(None, (self.telecom(point, f"{path}.valueContactPoint"),))
        self.r.warn(f"{path} has no valueContactDetail or valueContactPoint; ignored")
        return None


# -- CRD 2.2 rules ------------------------------------------------------------------------------------


def _issue(info: CoverageInformation, rule: str, message: str, severity: str = "error") -> Issue:
    return Issue(info.path, message, rule=rule, severity=severity)


def _values(info: CoverageInformation) -> list[str | None]:
    return [info.covered, info.pa_needed, *info.doc_needed]


def _reason_in_value_set(reason: Reason) -> bool:
    return reason.system in (CRD_TEMP, V3_ACT_REASON) and reason.code in ASSERTION_REASONS


def check_coverage_information(info: CoverageInformation) -> list[Issue]:
    """What in ``info`` breaks CRD 2.2: required parts, code sets, and invariants crd-ci-q1..q9.

    q4 is checked as its description says (no ``withpa`` when PA is satisfied or not needed, or the service is not
    covered): the IG's FHIRPath tests for the misspelt ``'noauth'``, so validators miss the no-auth case.
    The RI's pre-2.0 shape is reported once as legacy; the 2.2 rules are not applied to it.
    """
    if info.legacy:
        return [_issue(info, "legacy", "pre-2.0 coverage-information (payer RI shape); CRD 2.2 rules not applied",
                       "warning")]
    issues: list[Issue] = []
    for name, value in (("coverage", info.coverage), ("covered", info.covered), ("date", info.date),
                        ("coverage-assertion-id", info.coverage_assertion_id)):
        if not value:
            issues.append(_issue(info, "cardinality", f"'{name}' is required (1..1) but missing"))
    for name, values, allowed in (
        ("covered", (info.covered,), COVERED_CODES),
        ("pa-needed", (info.pa_needed,), PA_NEEDED_CODES),
        ("doc-needed", info.doc_needed, DOC_NEEDED_CODES),
        ("doc-purpose", info.doc_purpose, DOC_PURPOSE_CODES),
        ("info-needed", info.info_needed, INFO_NEEDED_CODES),
    ):
        for value in values:
            if value is not None and value not in allowed:
                issues.append(_issue(info, "value-set", f"'{name}' code {value!r} is not in the CRD 2.2 value set"))
    if info.questionnaires and not info.doc_needed:
        issues.append(_issue(info, "crd-ci-q1", "'questionnaire' is only allowed when 'doc-needed' is present"))
    if info.covered == "not-covered" and info.pa_needed is not None:
        issues.append(_issue(info, "crd-ci-q2", "'pa-needed' must be absent when the service is not covered"))
    conditional = "conditional" in _values(info)
    if conditional and not info.info_needed:
        issues.append(_issue(info, "crd-ci-q3", "a 'conditional' answer requires 'info-needed'"))
    elif info.info_needed and not conditional:
        issues.append(_issue(info, "crd-ci-q3", "'info-needed' is present but nothing is 'conditional'", "warning"))
    if "withpa" in info.doc_purpose and (info.pa_needed in ("satisfied", "no-auth") or info.covered == "not-covered"):
        state = info.pa_needed if info.covered != "not-covered" else "not-covered"
        issues.append(_issue(info, "crd-ci-q4", f"'doc-purpose' 'withpa' contradicts {state!r}: no PA will be sent"))
    if (info.pa_needed == "satisfied") != (info.satisfied_pa_id is not None):
        message = ("'pa-needed' is 'satisfied' but 'satisfied-pa-id' is missing" if info.pa_needed == "satisfied"
                   else "'satisfied-pa-id' is only allowed when 'pa-needed' is 'satisfied'")
        issues.append(_issue(info, "crd-ci-q5", message))
    if "OTH" in info.info_needed and not info.reasons:
        issues.append(_issue(info, "crd-ci-q6", "'info-needed' 'OTH' requires a 'reason'"))
    for index, reason in enumerate(info.reasons):
        if not reason.text and not _reason_in_value_set(reason):
            issues.append(Issue(f"{info.path}.extension('reason')[{index}]",
                                "a reason coded outside coverageAssertionReasons (or not coded) needs text",
                                rule="crd-ci-q7"))
    if info.doc_purpose and not info.reasons:
        issues.append(_issue(info, "crd-ci-q8", "'doc-purpose' requires a 'reason'"))
    if "indeterminate" in _values(info) and not info.reasons:
        issues.append(_issue(info, "crd-ci-q9", "an 'indeterminate' answer requires a 'reason'"))
    return issues


__all__ = [
    "CRD_TEMP",
    "EXT_COVERAGE_INFORMATION",
    "Contact",
    "CoverageInformation",
    "Detail",
    "Reason",
    "Telecom",
    "check_coverage_information",
    "coverage_information_of",
    "is_coverage_information",
    "read_coverage_information",
]

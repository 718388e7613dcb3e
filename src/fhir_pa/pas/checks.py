"""Check a PAS request Bundle before it is sent (and, in the sandbox, when it is received).

The checks are the ones the Inferno PAS client suite applies to every ``$submit`` (notes/pas.md §3, §6):
the Claim first, fullUrls, every reference resolving to exactly one entry, unique sequences, full dates,
the PAS invariants, and each entry against the profile its role in the Claim gives it (``profiles/``).
Base FHIR R4 structure is checked with the fhir.resources R4B models, which match R4 for these resources.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from fhir_pa.errors import Issue, ProfileError
from fhir_pa.pas import codes, rules
from fhir_pa.pas.elements import check_elements
from fhir_pa.pas.profiles import Profile, load_profile
from fhir_pa.pas.references import BundleIndex
from fhir_pa.pas.update_checks import grandparent_reference_paths, update_issues

Json = Mapping[str, Any]
GUIDE = "pas"


def _ref(node: Any) -> str | None:
    ref = node.get("reference") if isinstance(node, Mapping) else None
    return ref if isinstance(ref, str) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class _Roles:
    """Which PAS profile each entry must meet, from how the Claim (transitively) refers to it."""

    def __init__(self, index: BundleIndex) -> None:
        self.index = index
        self.roles: dict[int, str] = {}

    def _target(self, reference: Any, holder: int) -> int | None:
        ref = _ref(reference)
        if ref is None:
            return None
        full_url = self.index.entries[holder].get("fullUrl") if isinstance(self.index.entries[holder], Mapping) \
            else None
        found = self.index.resolve(ref, full_url if isinstance(full_url, str) else None)
        return found[0] if len(found) == 1 else None

    def assign(self, reference: Any, holder: int, role: str, only: str | None = None) -> int | None:
        target = self._target(reference, holder)
        if target is None:
            return None
        if only and self.index.resource(target).get("resourceType") != only:
            return target
        self.roles.setdefault(target, role)
        return target

    def walk(self, claim_at: int) -> dict[int, str]:
        claim = self.index.resource(claim_at)
        patient = self.assign(claim.get("patient"), claim_at, "beneficiary", "Patient")
        self.assign(claim.get("insurer"), claim_at, "insurer", "Organization")
        provider = self._target(claim.get("provider"), claim_at)
        if provider is not None:
            kind = self.index.resource(provider).get("resourceType")
            self.roles.setdefault(provider, "requestor" if kind == "Organization" else "practitionerrole")
        for insurance in _list(claim.get("insurance")):
            coverage_at = self.assign(insurance.get("coverage") if isinstance(insurance, Mapping) else None,
                                      claim_at, "coverage", "Coverage")
            if coverage_at is None:
                continue
            coverage = self.index.resource(coverage_at)
            for payor in _list(coverage.get("payor")):
                self.assign(payor, coverage_at, "insurer", "Organization")
            subscriber = self._target(coverage.get("subscriber"), coverage_at)
            if subscriber is not None and subscriber != patient:
                self.assign(coverage.get("subscriber"), coverage_at, "subscriber", "Patient")
        for member in _list(claim.get("careTeam")):
            if isinstance(member, Mapping):
                self.assign(member.get("provider"), claim_at, "practitionerrole", "PractitionerRole")
        for item in _list(claim.get("item")):
            for ext in _list(item.get("extension") if isinstance(item, Mapping) else None):
                if isinstance(ext, Mapping) and ext.get("url") == codes.EXT_REQUESTED_SERVICE:
                    self.assign(ext.get("valueReference"), claim_at, "servicerequest", "ServiceRequest")
        for info in _list(claim.get("supportingInfo")):
            target = self._target(info.get("valueReference"), claim_at) if isinstance(info, Mapping) else None
            # supportingInfo may point at US Core documents too; PAS DocumentReference applies when claimed or unset
            if target is not None and self.index.resource(target).get("resourceType") == "DocumentReference":
                meta = self.index.resource(target).get("meta")
                claimed = _list(meta.get("profile")) if isinstance(meta, Mapping) else []
                if not claimed or codes.DOCUMENT_REFERENCE in claimed:
                    self.roles.setdefault(target, "documentreference")
        for position, role in list(self.roles.items()):
            if role == "practitionerrole":
                self.assign(self.index.resource(position).get("practitioner"), position, "practitioner",
                            "Practitioner")
        return self.roles


def _claim_profile(is_update: bool) -> Profile:
    """PAS Claim for a new request; PAS Claim Update when the Claim has ``related`` (as Inferno chooses)."""
    return load_profile(GUIDE, "claim-update" if is_update else "claim")


def base_structure(bundle: Json) -> list[Issue]:
    """Base FHIR structure (types, required elements) via the R4B models; the first few errors as issues."""
    from fhir.resources.R4B.bundle import Bundle

    try:
        Bundle.model_validate(bundle)
    except ValidationError as exc:
        issues = []
        for error in exc.errors()[:10]:
            path = "Bundle" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
            issues.append(Issue(path, error["msg"], "base-R4"))
        return issues
    return []


def check_request_bundle(bundle: Any, *, base: bool = True) -> list[Issue]:
    """Every problem found in a PAS request Bundle, as issues with FHIRPath-style locations."""
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        return [Issue("resourceType", "a PAS request must be a Bundle", "ClaimFirst")]
    entries = _list(bundle.get("entry"))
    issues = check_elements(bundle, load_profile(GUIDE, "request-bundle"), location="Bundle")
    issues += rules.claim_first(entries)
    if not entries or (issues and any(i.rule == "ClaimFirst" for i in issues)):
        return issues
    issues += rules.full_urls(entries)
    index = BundleIndex(entries)
    claim = index.resource(0)
    where = "Bundle.entry[0].resource"
    is_update = bool(claim.get("related"))
    issues += rules.references_resolve(index, skip=grandparent_reference_paths(index) if is_update else ())
    issues += check_elements(claim, _claim_profile(is_update), location=where)
    if is_update:
        issues += update_issues(index, warnings=False)  # Inferno's verdict: leftover marks are not failures
    issues += rules.unique_sequences(claim, where)
    issues += rules.sequence_links(claim, where)
    issues += rules.full_dates(claim, where)
    issues += rules.immediate_level_of_care(claim, where)
    for i, item in enumerate(_list(claim.get("item"))):
        if isinstance(item, Mapping):
            issues += rules.quantity_units(item.get("quantity"), f"{where}.item[{i}].quantity")
    for position, role in sorted(_Roles(index).walk(0).items()):
        resource = index.resource(position)
        location = f"Bundle.entry[{position}].resource"
        issues += check_elements(resource, load_profile(GUIDE, role), location=location)
        if role in ("beneficiary", "subscriber"):
            issues += rules.full_birth_date(resource, location)
        elif role == "coverage":
            issues += rules.self_beneficiary(resource, location)
        elif role == "servicerequest":
            issues += rules.quantity_units(resource.get("quantityQuantity"), f"{location}.quantityQuantity")
    if base:
        issues += base_structure(bundle)
    return issues


def ensure_valid(bundle: Any, *, base: bool = True) -> None:
    """Raise :class:`~fhir_pa.errors.ProfileError` if ``bundle`` breaks any error-level rule."""
    errors = [issue for issue in check_request_bundle(bundle, base=base) if issue.severity == "error"]
    if errors:
        raise ProfileError(errors)

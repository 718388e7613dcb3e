"""The Claim Update rules the Inferno PAS client suite applies (notes/pas.md §3 "Claim Updates", spec-65..72).

They judge an update Bundle against the Claim it updates: the one embedded in the Bundle (what a payer sees),
or, when the caller has it, the request sent last time (what we actually sent). Rule names are the IG's
conformance ids, so a failure points at the requirement a tester would quote. Like Inferno, a mark left over
on an entry that did not change is not an error, only a warning: the payer will read it as a change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from fhir_pa.errors import InputError, Issue
from fhir_pa.pas import rules
from fhir_pa.pas.references import BundleIndex, full_url_resolver
from fhir_pa.pas.update_diff import (
    ADDED,
    CANCEL,
    CHANGE_CODES,
    CHANGED,
    Change,
    by_sequence,
    certification_codes,
    classify,
    info_changed,
    is_cancelled,
    rewrite_references,
)

Json = Mapping[str, Any]
Resolver = Callable[[str], str | None]
WHERE = "Bundle.entry[0].resource"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _full_url(index: BundleIndex, position: int) -> str | None:
    entry = index.entries[position]
    full_url = entry.get("fullUrl") if isinstance(entry, Mapping) else None
    return full_url if isinstance(full_url, str) else None


def _related_refs(claim: Json) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for r, related in enumerate(_list(claim.get("related"))):
        target = related.get("claim") if isinstance(related, Mapping) else None
        ref = target.get("reference") if isinstance(target, Mapping) else None
        if isinstance(ref, str):
            out.append((r, ref))
    return out


def prior_claim_positions(index: BundleIndex) -> list[int]:
    """Entry positions of the Claim(s) that entry[0]'s ``related.claim`` points at."""
    holder = _full_url(index, 0)
    return [p for _, ref in _related_refs(index.resource(0)) for p in index.resolve(ref, holder)]


def grandparent_reference_paths(index: BundleIndex) -> list[str]:
    """Locations of the prior Claim's own ``related.claim`` references (spec-66: never followed)."""
    paths: list[str] = []
    for position in prior_claim_positions(index):
        for r, _ in _related_refs(index.resource(position)):
            paths.append(f"Bundle.entry[{position}].resource.related[{r}].claim.reference")
    return paths


def _referenced_claim(index: BundleIndex) -> tuple[list[Issue], int | None]:
    """spec-65: related.claim is there and resolves to exactly one Claim entry; spec-66: no grandparent."""
    claim = index.resource(0)
    refs = _related_refs(claim)
    if not refs:
        return [Issue(f"{WHERE}.related", "a Claim Update must point at the Claim it updates in related.claim",
                      "spec-65")], None
    issues: list[Issue] = []
    parent: int | None = None
    for r, ref in refs:
        found = index.resolve(ref, _full_url(index, 0))
        path = f"{WHERE}.related[{r}].claim.reference"
        if len(found) != 1 or index.resource(found[0]).get("resourceType") != "Claim" or found[0] == 0:
            issues.append(Issue(path, "the Claim being updated must be in the Bundle, exactly once", "spec-65"))
            continue
        parent = found[0] if parent is None else parent
        prior = index.resource(found[0])
        for g, grand_ref in _related_refs(prior):
            for position in index.resolve(grand_ref, _full_url(index, found[0])):
                issues.append(Issue(f"Bundle.entry[{position}]", "the prior Claim's own related.claim target "
                                    f"(Bundle.entry[{found[0]}].resource.related[{g}]) must not be in the Bundle",
                                    "spec-66"))
    return issues, parent


def _canonical(node: Any, resolve: Resolver) -> str:
    return json.dumps(rewrite_references(node, resolve), sort_keys=True, separators=(",", ":"))


def _prior_from_bundle(prior: Any) -> tuple[Json, Resolver]:
    if not isinstance(prior, Mapping) or prior.get("resourceType") != "Bundle":
        raise InputError("the prior request must be a Bundle", path="prior")
    entries = _list(prior.get("entry"))
    index = BundleIndex(entries)
    claim = index.resource(0) if entries else {}
    if claim.get("resourceType") != "Claim":
        raise InputError("the prior request's first entry must be its Claim", path="prior.entry[0].resource")
    return claim, full_url_resolver(index, _full_url(index, 0))


def _entry_issues(name: str, current_list: Any, prior_list: Any, resolve_now: Resolver,
                  resolve_before: Resolver) -> list[Issue]:
    """spec-68..72 for one kind of entry (``item`` or ``supportingInfo``)."""
    issues: list[Issue] = []
    current, before = by_sequence(current_list), by_sequence(prior_list)
    missing = sorted(set(before) - set(current))
    if missing:
        issues.append(Issue(f"{WHERE}.{name}", f"{name} sequence(s) {', '.join(map(str, missing))} of the prior "
                            "Claim are missing: entries are never dropped from an update, they are cancelled",
                            "spec-68"))
    is_item = name == "item"
    for i, entry in enumerate(_list(current_list)):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("sequence"), int):
            continue
        path, sequence = f"{WHERE}.{name}[{i}]", entry["sequence"]
        prior = before.get(sequence)
        cancelled, cert_cancel = is_cancelled(entry), is_item and CANCEL in certification_codes(entry)
        if cert_cancel and not cancelled:
            issues.append(Issue(f"{path}.modifierExtension", "a cancelled item (certificationType 3) must carry "
                                "modifierextension-infoCancelled = true", "spec-69"))
        elif prior is not None and is_cancelled(prior) and not cancelled:
            issues.append(Issue(f"{path}.modifierExtension", f"{name} sequence {sequence} was cancelled in the "
                                "prior Claim and must stay cancelled (infoCancelled = true)", "spec-69"))
        if is_item and cancelled and not cert_cancel:
            issues.append(Issue(f"{path}.extension", "a cancelled item must carry certificationType 3 (Cancel)",
                                "spec-70"))
        marks = info_changed(entry)
        for code in marks:
            if code not in CHANGE_CODES:
                issues.append(Issue(f"{path}.extension", f"infoChanged valueCode {code!r} is not one of "
                                    f"{', '.join(CHANGE_CODES)}", "spec-72"))
        change = classify(entry, prior, resolve_now, resolve_before)
        expected = {Change.ADDED: ADDED, Change.MODIFIED: CHANGED, Change.NEWLY_CANCELLED: CHANGED}.get(change)
        what = {Change.ADDED: "added", Change.MODIFIED: "modified", Change.NEWLY_CANCELLED: "newly cancelled"}
        if expected is not None and not marks:
            issues.append(Issue(f"{path}.extension", f"the {what[change]} {name} (sequence {sequence}) must carry "
                                f"infoChanged = {expected}", "spec-71"))
        elif expected is not None and any(code in CHANGE_CODES and code != expected for code in marks):
            issues.append(Issue(f"{path}.extension", f"the {what[change]} {name} (sequence {sequence}) must use "
                                f"infoChanged = {expected}", "spec-72"))
        elif expected is None and marks:
            issues.append(Issue(f"{path}.extension", f"{name} sequence {sequence} equals its prior version but "
                                "carries infoChanged; the payer will read it as a change", "spec-71", "warning"))
    return issues


def update_issues(index: BundleIndex, prior: Json | None = None, *, cancel_all: bool = False,
                  warnings: bool = True) -> list[Issue]:
    """The Claim Update rules except reference resolution (``check_request_bundle`` does that already).

    ``warnings=False`` keeps only what Inferno fails, for callers that mirror its verdict exactly.
    """
    claim = index.resource(0)
    issues, parent = _referenced_claim(index)
    if cancel_all and CANCEL not in certification_codes(claim):
        issues.append(Issue(f"{WHERE}.extension", "a cancel of the entire request needs the Claim-level "
                            "certificationType extension with code 3", "cancel-request"))
    items = [i for i in _list(claim.get("item")) if isinstance(i, Mapping)]
    if not cancel_all and items and all(is_cancelled(i) for i in items) and CANCEL not in certification_codes(claim):
        issues.append(Issue(f"{WHERE}.extension", "every item is cancelled: to cancel the whole request, add the "
                            "Claim-level certificationType 3", "cancel-request", "warning"))
    resolve_now = full_url_resolver(index, _full_url(index, 0))
    if prior is not None:
        before, resolve_before = _prior_from_bundle(prior)
        resolve_parent = full_url_resolver(index, _full_url(index, parent)) if parent is not None else None
        if parent is not None and resolve_parent is not None \
                and _canonical(index.resource(parent), resolve_parent) != _canonical(before, resolve_before):
            issues.append(Issue(f"{WHERE}.related[0].claim", "the Claim referenced by related.claim is not the "
                                "Claim of the prior request", "spec-65"))
    elif parent is not None:
        before, resolve_before = index.resource(parent), full_url_resolver(index, _full_url(index, parent))
    else:
        return issues if warnings else [issue for issue in issues if issue.severity == "error"]
    for name in ("item", "supportingInfo"):
        issues += _entry_issues(name, claim.get(name), before.get(name), resolve_now, resolve_before)
    return issues if warnings else [issue for issue in issues if issue.severity == "error"]


def check_update_bundle(bundle: Any, prior: Json | None = None, *, cancel_all: bool = False) -> list[Issue]:
    """Every Claim Update rule ``bundle`` breaks, as issues with FHIRPath locations.

    ``prior`` is the request Bundle sent last time; without it the Claim embedded via ``related.claim`` is
    the reference. ``cancel_all`` declares the update a cancel of the entire request (Claim-level
    certificationType 3 then required).
    """
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        return [Issue("Bundle", "a PAS request must be a Bundle", "ClaimFirst")]
    entries = _list(bundle.get("entry"))
    issues = rules.claim_first(entries)
    if issues:
        return issues
    index = BundleIndex(entries)
    issues += update_issues(index, prior, cancel_all=cancel_all)
    issues += [Issue(i.path, i.message, "spec-67", i.severity)
               for i in rules.references_resolve(index, skip=grandparent_reference_paths(index))]
    return issues

"""Build PAS Claim Updates and cancels (notes/pas.md §2.8, §6 pitfall 10): pure functions, no I/O.

An update is a new ``$submit`` whose entry[0] is a PAS Claim Update pointing (``related``, ``prior``) at the
Claim sent last time, which travels in the same Bundle; that Claim's own predecessor (the grandparent) must
not. The update carries every item and supportingInfo ever sent, under its original sequence, each marked
against the immediately prior Claim: ``infoChanged=added`` for new entries, ``changed`` for modified ones,
``infoCancelled`` + certificationType ``3`` + ``changed`` for entries removed now; entries cancelled earlier
stay cancelled without a new mark, and unchanged entries carry no mark at all (a mark left over from the
previous version would claim a change that did not happen).

Claim.identifier: every update gets a fresh trace value (same system and qualifiers as before). The IG's own
update example does this (``111099-UPDATE``); the Inferno preset reuses the original value, which its tests do
not check. A fresh value keeps a payer that de-duplicates resends on the identifier from taking the update for a
resend of the original, and it is what the ledger correlates the update's own response with; the link to the
original travels in ``related.claim``.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fhir_pa.config import Sender
from fhir_pa.errors import InputError
from fhir_pa.pas import codes
from fhir_pa.pas.bundle import PasRequest, build_request_bundle
from fhir_pa.pas.order import PriorAuthOrder
from fhir_pa.pas.references import BundleIndex, full_url_resolver, iter_references
from fhir_pa.pas.update_checks import check_update_bundle
from fhir_pa.pas.update_diff import (
    ADDED,
    CANCEL,
    CHANGED,
    RELATED_CLAIM_RELATIONSHIP,
    by_sequence,
    certification_codes,
    certification_extension,
    comparable,
    extensions,
    is_cancelled,
    mark,
    rewrite_references,
)

Json = dict[str, Any]

__all__ = ["build_cancel_bundle", "build_update_bundle", "build_update_from_claim", "check_update_bundle"]

#: R4 Claim element order, so what we send diffs cleanly against what we sent before.
_CLAIM_ORDER = ("resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension",
                "modifierExtension", "identifier", "status", "type", "subType", "use", "patient", "billablePeriod",
                "created", "enterer", "insurer", "provider", "priority", "fundsReserve", "related", "prescription",
                "originalPrescription", "payee", "referral", "facility", "careTeam", "supportingInfo", "diagnosis",
                "procedure", "insurance", "accident", "item", "total")
#: Claim elements that describe one version, never copied into the next one.
_VERSION_ONLY = {"resourceType", "id", "meta", "text", "identifier", "created", "related", "item", "supportingInfo"}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _timestamp(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class _Prior:
    """The prior request Bundle, read leniently but with clear errors for what an update cannot do without."""

    def __init__(self, prior: Any) -> None:
        if not isinstance(prior, Mapping) or prior.get("resourceType") != "Bundle":
            raise InputError("the prior request must be a Bundle", path="prior")
        entries = _list(prior.get("entry"))
        first = entries[0] if entries and isinstance(entries[0], Mapping) else {}
        claim = first.get("resource")
        if not isinstance(claim, Mapping) or claim.get("resourceType") != "Claim":
            raise InputError("the prior request's first entry must be its Claim", path="prior.entry[0].resource")
        full_url = first.get("fullUrl")
        if not isinstance(full_url, str) or not full_url:
            raise InputError("the prior Claim has no fullUrl, so the update cannot reference it",
                             path="prior.entry[0].fullUrl")
        self.entries: list[Mapping[str, Any]] = [e for e in entries if isinstance(e, Mapping)]
        self.claim_entry: Mapping[str, Any] = first
        self.claim: Mapping[str, Any] = claim
        self.full_url = full_url
        index = BundleIndex(entries)
        self.grandparents: set[int] = set()
        for related in _list(claim.get("related")):
            target = related.get("claim") if isinstance(related, Mapping) else None
            ref = target.get("reference") if isinstance(target, Mapping) else None
            if isinstance(ref, str):
                self.grandparents.update(index.resolve(ref, full_url))
        self.others = [e for i, e in enumerate(entries)
                       if i > 0 and i not in self.grandparents and isinstance(e, Mapping)]


def _pool(prior: _Prior, resources: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The prior's entries (grandparent left out) with ``resources`` replacing same-fullUrl ones or added."""
    given: dict[str, Mapping[str, Any]] = {}
    for i, entry in enumerate(resources):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("resource"), Mapping):
            raise InputError("each resource must be an entry with a resource", path=f"resources[{i}]")
        full_url = entry.get("fullUrl")
        if not isinstance(full_url, str) or not full_url:
            raise InputError("each resource needs a fullUrl", path=f"resources[{i}].fullUrl")
        if full_url == prior.full_url:
            raise InputError("a resource may not replace the prior Claim", path=f"resources[{i}].fullUrl")
        given[full_url] = {"fullUrl": full_url, "resource": copy.deepcopy(dict(entry["resource"]))}
    pool: list[Mapping[str, Any]] = []
    for entry in prior.others:
        full_url = entry.get("fullUrl")
        pool.append(given.pop(full_url) if isinstance(full_url, str) and full_url in given else entry)
    pool.extend(given.values())
    return pool


def _require_resolved(node: Any, path: str, resolve: Callable[[str], str | None]) -> None:
    for where, reference in iter_references(node, path):
        if resolve(reference) is None:
            raise InputError("reference does not resolve to exactly one entry of the prior request or the given "
                             "resources", path=where)


def _current(entries: Sequence[Mapping[str, Any]], name: str) -> dict[int, Mapping[str, Any]]:
    """The desired entries by sequence; entries the caller marked cancelled count as removed."""
    out: dict[int, Mapping[str, Any]] = {}
    for i, entry in enumerate(entries):
        sequence = entry.get("sequence") if isinstance(entry, Mapping) else None
        if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
            raise InputError(f"each {name} entry needs a positive integer sequence", path=f"{name}[{i}].sequence")
        if sequence in out:
            raise InputError(f"{name} sequence {sequence} is given twice", path=f"{name}[{i}].sequence")
        if is_cancelled(entry) or (name == "item" and CANCEL in certification_codes(entry)):
            continue
        out[sequence] = entry
    return out


def _marked(current: dict[int, Mapping[str, Any]], prior_entries: Any, name: str,
            resolve: Callable[[str], str | None]) -> list[Json]:
    """Every entry ever sent plus the new ones, marked against the prior Claim, in sequence order."""
    prior = by_sequence(prior_entries)
    is_item = name == "item"
    out: list[Json] = []
    for sequence in sorted(set(prior) | set(current)):
        now, before = current.get(sequence), prior.get(sequence)
        if now is None:
            assert before is not None
            content = rewrite_references(before, resolve)
            out.append(mark(content, changed=None if is_cancelled(before) else CHANGED, cancelled=True,
                            is_item=is_item))
        elif before is None:
            out.append(mark(rewrite_references(now, resolve), changed=ADDED, cancelled=False, is_item=is_item))
        elif is_cancelled(before):
            raise InputError(f"{name} sequence {sequence} was cancelled earlier and cannot be reinstated; send it "
                             "as a new entry with a new sequence", path=f"{name}[sequence={sequence}]")
        else:
            modified = comparable(now, resolve) != comparable(before, resolve)
            out.append(mark(rewrite_references(now, resolve), changed=CHANGED if modified else None, cancelled=False,
                            is_item=is_item))
    return out


def _reachable(entries: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``entries[:2]`` (the update and the prior Claim) and every entry they reach, transitively.

    The prior Claim's ``related`` is not followed: its target is the grandparent, which must stay out.
    """
    index = BundleIndex(entries)
    keep = {0, 1}
    queue = deque([0, 1])
    while queue:
        position = queue.popleft()
        entry = entries[position]
        holder = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        resource = entry.get("resource")
        if position == 1 and isinstance(resource, Mapping):
            resource = {k: v for k, v in resource.items() if k != "related"}
        for _, reference in iter_references(resource, ""):
            for target in index.resolve(reference, holder):
                if target not in keep:
                    keep.add(target)
                    queue.append(target)
    return [entry for i, entry in enumerate(entries) if i in keep]


def build_update_from_claim(prior: Mapping[str, Any], items: Sequence[Mapping[str, Any]] | None = None,
                            supporting_info: Sequence[Mapping[str, Any]] | None = None, *,
                            claim: Mapping[str, Any] | None = None, resources: Sequence[Mapping[str, Any]] = (),
                            cancel_all: bool = False, sender: Sender | None = None, now: datetime | None = None,
                            order_id: str = "", new_id: Callable[[], str] | None = None) -> PasRequest:
    """The Claim Update of ``prior`` (the exact Bundle sent last time) that brings it to the given state.

    ``items`` / ``supporting_info`` are the entries wanted *now*, as Claim JSON with their sequences (``None``
    keeps the prior's). A prior entry missing from them, or given with infoCancelled (or, for items,
    certificationType 3), is cancelled. Their tracking marks are recomputed here, so entries can be passed as
    they appear in any Claim. ``claim`` holds the current Claim-level elements (default: the prior Claim's;
    its identifier, created, related, item and supportingInfo are ignored). ``resources`` are entries
    (fullUrl + resource) the current state refers to: they replace prior entries with the same fullUrl and are
    added otherwise. References in the given JSON resolve as if written in the prior Claim. Raises
    :class:`~fhir_pa.errors.InputError` naming the path of anything that cannot be honoured.
    """
    before = _Prior(prior)
    sender = sender or Sender()
    make_id = new_id or (lambda: str(uuid.uuid4()))
    stamp = _timestamp(now or datetime.now(UTC))
    pool = _pool(before, resources)
    index = BundleIndex([before.claim_entry, *pool])
    resolve = full_url_resolver(index, before.full_url)

    base = claim if claim is not None else before.claim
    if not isinstance(base, Mapping):
        raise InputError("claim must be a Claim object", path="claim")
    fields = {k: v for k, v in base.items() if k not in _VERSION_ONLY}
    if claim is not None:
        _require_resolved(fields, "claim", resolve)
    for name, given in (("item", items), ("supportingInfo", supporting_info)):
        if given is not None:
            _require_resolved(list(given), name, resolve)
    fields = rewrite_references(fields, resolve)
    extension = [e for e in _list(fields.get("extension"))
                 if not (isinstance(e, Mapping) and e.get("url") == codes.EXT_CERTIFICATION_TYPE)]
    if cancel_all:
        extension.append(certification_extension(CANCEL, "Cancel"))
    if extension:
        fields["extension"] = extension
    else:
        fields.pop("extension", None)

    item_list = _marked(_current(items if items is not None else _list(before.claim.get("item")), "item"),
                        before.claim.get("item"), "item", resolve)
    if not item_list:
        raise InputError("a Claim Update needs at least one item", path="items")
    info_list = _marked(_current(supporting_info if supporting_info is not None
                                 else _list(before.claim.get("supportingInfo")), "supportingInfo"),
                        before.claim.get("supportingInfo"), "supportingInfo", resolve)

    source_ids = _list(base.get("identifier")) or _list(before.claim.get("identifier"))
    identifier = copy.deepcopy(dict(source_ids[0])) if source_ids and isinstance(source_ids[0], Mapping) else {}
    identifier.setdefault("system", f"urn:trnorg:{sender.trn_originator}")
    identifier["value"] = make_id().replace("-", "")

    update: Json = {
        **fields,
        "resourceType": "Claim",
        "meta": {"profile": [codes.CLAIM_UPDATE]},
        "identifier": [identifier],
        "status": "active",
        "use": "preauthorization",
        "created": stamp,
        "related": [{"claim": {"reference": before.full_url},
                     "relationship": {"coding": [{"system": RELATED_CLAIM_RELATIONSHIP, "code": "prior"}]}}],
        "item": item_list,
    }
    if info_list:
        update["supportingInfo"] = info_list
    rank = {key: position for position, key in enumerate(_CLAIM_ORDER)}
    update = {key: update[key] for key in sorted(update, key=lambda k: rank.get(k, len(rank)))}

    claim_url = f"urn:uuid:{make_id()}"
    entries = _reachable([{"fullUrl": claim_url, "resource": update}, copy.deepcopy(dict(before.claim_entry)),
                          *[copy.deepcopy(dict(e)) for e in pool]])
    bundle_id = make_id()
    bundle: Json = {
        "resourceType": "Bundle",
        "meta": {"profile": [codes.REQUEST_BUNDLE]},
        "identifier": {"system": sender.submitter_system, "value": bundle_id},
        "type": "collection",
        "timestamp": stamp,
        "entry": entries,
    }
    return PasRequest(
        bundle=bundle,
        bundle_identifier=f"{sender.submitter_system}|{bundle_id}",
        claim_identifier=f"{identifier['system']}|{identifier['value']}",
        claim_full_url=claim_url,
        item_sequences=tuple(item["sequence"] for item in item_list),
        order_id=order_id,
    )


def build_cancel_bundle(prior: Mapping[str, Any], *, sender: Sender, now: datetime | None = None) -> PasRequest:
    """Cancel the whole request: a Claim Update with Claim-level certificationType 3 and every item kept.

    The profile still requires ``item`` 1..*, so the items travel unchanged (no new marks), as in the Inferno
    preset. ``order_id`` of the result is empty: a cancel belongs to the request, not to an order edit.
    """
    return build_update_from_claim(prior, cancel_all=True, sender=sender, now=now)


# --- from an order -------------------------------------------------------------------------------


def _target(index: BundleIndex, holder: str | None, node: Any) -> int | None:
    ref = node.get("reference") if isinstance(node, Mapping) else None
    if not isinstance(ref, str):
        return None
    found = index.resolve(ref, holder)
    return found[0] if len(found) == 1 else None


def _roles(entries: list[Any]) -> dict[str, int]:
    """Entry positions by the part they play for the Claim (entry[0]): the same real-world thing across builds."""
    index = BundleIndex(entries)

    def url(position: int) -> str | None:
        full_url = entries[position].get("fullUrl") if isinstance(entries[position], Mapping) else None
        return full_url if isinstance(full_url, str) else None

    claim = index.resource(0)
    roles: dict[str, int] = {}

    def add(role: str, holder: int, node: Any) -> int | None:
        found = _target(index, url(holder), node)
        if found is not None:
            roles.setdefault(role, found)
        return found

    patient = add("patient", 0, claim.get("patient"))
    add("insurer", 0, claim.get("insurer"))
    add("provider", 0, claim.get("provider"))
    for member in _list(claim.get("careTeam")):
        if isinstance(member, Mapping):
            role = add(f"careTeam:{member.get('sequence')}", 0, member.get("provider"))
            if role is not None:
                add(f"careTeam:{member.get('sequence')}:practitioner", role, index.resource(role).get("practitioner"))
                add(f"careTeam:{member.get('sequence')}:organization", role, index.resource(role).get("organization"))
    for insurance in _list(claim.get("insurance")):
        if isinstance(insurance, Mapping):
            coverage = add(f"coverage:{insurance.get('sequence')}", 0, insurance.get("coverage"))
            if coverage is not None:
                subscriber = _target(index, url(coverage), index.resource(coverage).get("subscriber"))
                if subscriber is not None and subscriber != patient:
                    roles.setdefault("subscriber", subscriber)
                for j, payor in enumerate(_list(index.resource(coverage).get("payor"))):
                    add(f"payor:{j}", coverage, payor)
    for item in _list(claim.get("item")):
        for ext in extensions(item, codes.EXT_REQUESTED_SERVICE):
            add(f"service:{item.get('sequence') if isinstance(item, Mapping) else ''}", 0, ext.get("valueReference"))
    return roles


def _same_document(fresh: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Attachments have no id of their own: the same document is the same content, whenever it was dated."""
    def key(resource: Mapping[str, Any]) -> str:
        return json.dumps({k: v for k, v in resource.items() if k != "date"}, sort_keys=True)
    return key(fresh) == key(old)


def build_update_bundle(prior: Mapping[str, Any], order: PriorAuthOrder, *, sender: Sender,
                        now: datetime | None = None) -> PasRequest:
    """The Claim Update that brings the request ``prior`` (the exact Bundle sent last time) to ``order``.

    ``order`` is the whole current state. Its service lines match the prior Claim's items by sequence (give
    :attr:`~fhir_pa.pas.order.ServiceLine.sequence` explicitly when lines are removed, or positions shift);
    lines missing now are cancelled. Supporting info (attachments, then the note) matches by position.
    Patient, coverage, organizations, clinician and each line's ServiceRequest keep the fullUrl they had in
    ``prior`` (one instance per real-world thing) and carry their current content.
    """
    fresh = build_request_bundle(order, sender=sender, now=now)
    fresh_entries: list[Json] = fresh.bundle["entry"]
    before = _Prior(prior)
    prior_entries: list[Any] = [before.claim_entry, *before.others]
    fresh_roles, prior_roles = _roles(list(fresh_entries)), _roles(prior_entries)
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for role, position in fresh_roles.items():
        old = prior_roles.get(role)
        if old is None:
            continue
        new_entry, old_entry = fresh_entries[position], prior_entries[old]
        same_type = new_entry["resource"].get("resourceType") == old_entry.get("resource", {}).get("resourceType")
        old_url = old_entry.get("fullUrl")
        if same_type and isinstance(old_url, str) and old_url not in taken and new_entry["fullUrl"] not in mapping:
            mapping[new_entry["fullUrl"]] = old_url
            taken.add(old_url)
    rewritten: list[Json] = [
        {"fullUrl": entry["fullUrl"], "resource": rewrite_references(entry["resource"], mapping.get)}
        for entry in fresh_entries[1:]]
    resources: list[Json] = []
    for entry in rewritten:
        if entry["fullUrl"] in mapping:
            resources.append({"fullUrl": mapping[entry["fullUrl"]], "resource": entry["resource"]})
            continue
        if entry["resource"].get("resourceType") == "DocumentReference":
            match = next((old for old in before.others if isinstance(old.get("fullUrl"), str)
                          and old["fullUrl"] not in taken and isinstance(old.get("resource"), Mapping)
                          and _same_document(entry["resource"], old["resource"])), None)
            if match is not None:
                mapping[entry["fullUrl"]] = match["fullUrl"]
                taken.add(match["fullUrl"])
                continue  # the prior's copy stays, with its original date
        resources.append(entry)
    claim = rewrite_references(fresh.claim, mapping.get)
    return build_update_from_claim(
        prior, claim["item"], _list(claim.get("supportingInfo")), claim=claim, resources=resources,
        sender=sender, now=now, order_id=order.order_id)

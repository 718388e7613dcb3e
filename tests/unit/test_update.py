"""Claim Update and cancel builders: the Inferno four-step sequence, and updates built from edited orders."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from fhir_pa.config import Sender
from fhir_pa.errors import InputError
from fhir_pa.pas import codes
from fhir_pa.pas.bundle import PasRequest, build_request_bundle
from fhir_pa.pas.checks import check_request_bundle
from fhir_pa.pas.order import PriorAuthOrder
from fhir_pa.pas.references import BundleIndex
from fhir_pa.pas.update import build_cancel_bundle, build_update_bundle, build_update_from_claim
from fhir_pa.pas.update_checks import check_update_bundle
from fhir_pa.pas.update_diff import certification_codes, comparable, info_changed, is_cancelled
from tests.conftest import load_fixture

MakeOrder = Callable[..., PriorAuthOrder]
Json = dict[str, Any]
SENDER = Sender(trn_originator="1234567890")
NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def _step(name: str) -> Json:
    data: Json = load_fixture("pas", f"inferno-v221-claim_update_{name}_submit_payload.json")
    return data


def _marks(claim: Json) -> dict[str, dict[int, tuple[tuple[Any, ...], bool, frozenset[str]]]]:
    """Per entry kind and sequence: (infoChanged codes, infoCancelled, certificationType codes)."""
    return {name: {e["sequence"]: (tuple(info_changed(e)), is_cancelled(e), frozenset(certification_codes(e)))
                   for e in claim.get(name, [])}
            for name in ("item", "supportingInfo")}


def _without_info_changed(marks: dict[str, dict[int, Any]]) -> dict[str, dict[int, Any]]:
    return {name: {seq: (cancelled, cert) for seq, (_, cancelled, cert) in by_seq.items()}
            for name, by_seq in marks.items()}


def _resolver(bundle: Json) -> Callable[[str], str | None]:
    index = BundleIndex(bundle["entry"])
    holder = bundle["entry"][0]["fullUrl"]

    def resolve(ref: str) -> str | None:
        found = index.resolve(ref, holder)
        return bundle["entry"][found[0]]["fullUrl"] if len(found) == 1 else None
    return resolve


def _substance(bundle: Json, name: str) -> dict[int, str]:
    """Each entry's content with tracking marks removed and references resolved to the fullUrl they hit."""
    resolve = _resolver(bundle)
    return {e["sequence"]: comparable(e, resolve) for e in bundle["entry"][0]["resource"].get(name, [])}


def _related_target(bundle: Json) -> int:
    claim = bundle["entry"][0]["resource"]
    reference = claim["related"][0]["claim"]["reference"]
    found = BundleIndex(bundle["entry"]).resolve(reference, bundle["entry"][0]["fullUrl"])
    assert len(found) == 1
    return found[0]


def _non_claim_urls(bundle: Json) -> set[str]:
    return {e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] != "Claim"}


def _errors(bundle: Json) -> list[str]:
    return [str(i) for i in check_request_bundle(bundle) if i.severity == "error"]


# --- the Inferno sequence ------------------------------------------------------------------------


def _edit(prior: Json, step: str) -> PasRequest:
    """Express an Inferno step as its current state (items, supportingInfo, Claim-level fields) on ``prior``."""
    claim = _step(step)["entry"][0]["resource"]
    return build_update_from_claim(prior, claim["item"], claim["supportingInfo"], claim=claim, sender=SENDER, now=NOW)


def _assert_same_as_fixture(built: PasRequest, prior: Json, step: str, *, compare_info_changed: bool = True) -> None:
    fixture = _step(step)
    ours, theirs = built.bundle["entry"][0]["resource"], fixture["entry"][0]["resource"]
    assert ours["meta"]["profile"] == [codes.CLAIM_UPDATE] == theirs["meta"]["profile"]
    assert [i["sequence"] for i in ours["item"]] == [i["sequence"] for i in theirs["item"]]
    assert [s["sequence"] for s in ours["supportingInfo"]] == [s["sequence"] for s in theirs["supportingInfo"]]
    if compare_info_changed:
        assert _marks(ours) == _marks(theirs)
    else:
        assert _without_info_changed(_marks(ours)) == _without_info_changed(_marks(theirs))
    for name in ("item", "supportingInfo"):
        assert _substance(built.bundle, name) == _substance(fixture, name)
    assert certification_codes(ours) == certification_codes(theirs)
    # related: both point at an included Claim that is the immediately prior version, and its predecessor is absent
    assert built.bundle["entry"][_related_target(built.bundle)] == prior["entry"][0]
    fixture_parent = fixture["entry"][_related_target(fixture)]["resource"]
    assert ours["related"][0]["relationship"] == theirs["related"][0]["relationship"]
    for bundle, parent in ((built.bundle, built.bundle["entry"][1]["resource"]), (fixture, fixture_parent)):
        for related in parent.get("related", []):
            grand = related["claim"]["reference"]
            assert not BundleIndex(bundle["entry"]).resolve(grand, bundle["entry"][1]["fullUrl"])
    assert _non_claim_urls(built.bundle) == _non_claim_urls(fixture)
    assert [e["resource"]["resourceType"] for e in built.bundle["entry"]].count("Claim") == 2
    assert check_update_bundle(built.bundle, prior) == []
    assert _errors(built.bundle) == []


def test_inferno_sequence_step_by_step() -> None:
    """Initial → add item 2 → modify item 1 and cancel item 2 → cancel everything, each on our own last build."""
    initial = _step("initial")
    add = _edit(initial, "add_item")
    _assert_same_as_fixture(add, initial, "add_item")
    assert _marks(add.claim)["item"][2] == (("added",), False, frozenset({"I"}))
    assert _marks(add.claim)["item"][1] == ((), False, frozenset({"I"}))

    modify = _edit(add.bundle, "modify_cancel")
    _assert_same_as_fixture(modify, add.bundle, "modify_cancel")
    assert _marks(modify.claim)["item"] == {1: (("changed",), False, frozenset({"I"})),
                                            2: (("changed",), True, frozenset({"3"}))}
    assert initial["entry"][0]["fullUrl"] not in {e["fullUrl"] for e in modify.bundle["entry"]}

    cancel = build_cancel_bundle(modify.bundle, sender=SENDER, now=NOW)
    # The Inferno preset copies step 3's infoChanged marks forward onto unchanged entries; Inferno does not
    # judge marks in the cancel-all step. We mark only changes against the prior Claim, so we send none.
    _assert_same_as_fixture(cancel, modify.bundle, "cancel_all", compare_info_changed=False)
    assert _marks(cancel.claim)["item"] == {1: ((), False, frozenset({"I"})), 2: ((), True, frozenset({"3"}))}
    assert "3" in certification_codes(cancel.claim)
    assert check_update_bundle(cancel.bundle, modify.bundle, cancel_all=True) == []


@pytest.mark.parametrize(("prior_step", "step"), [("initial", "add_item"), ("add_item", "modify_cancel")])
def test_each_edit_on_the_fixture_prior(prior_step: str, step: str) -> None:
    """The same edits, each applied to the preset's own previous payload as ``prior``."""
    prior = _step(prior_step)
    built = _edit(prior, step)
    _assert_same_as_fixture(built, prior, step)
    assert built.bundle["entry"][1] == prior["entry"][0]  # the prior Claim travels unchanged, same fullUrl


def test_cancel_all_on_the_fixture_prior() -> None:
    prior = _step("modify_cancel")
    built = build_cancel_bundle(prior, sender=SENDER, now=NOW)
    _assert_same_as_fixture(built, prior, "cancel_all", compare_info_changed=False)
    assert built.order_id == ""


def test_cancelling_by_omission_equals_cancelling_by_mark() -> None:
    prior = _step("add_item")
    claim = _step("modify_cancel")["entry"][0]["resource"]
    omitted = build_update_from_claim(prior, [claim["item"][0]], claim["supportingInfo"], claim=claim, sender=SENDER,
                                      now=NOW, new_id=lambda: "00000000-0000-4000-8000-000000000000")
    marked = build_update_from_claim(prior, claim["item"], claim["supportingInfo"], claim=claim, sender=SENDER,
                                     now=NOW, new_id=lambda: "00000000-0000-4000-8000-000000000000")
    assert omitted.bundle == marked.bundle


def test_update_envelope_is_new() -> None:
    prior = _step("initial")
    built = _edit(prior, "add_item")
    bundle, claim = built.bundle, built.claim
    assert bundle["identifier"]["system"] == SENDER.submitter_system
    assert bundle["identifier"] != prior["identifier"]
    assert bundle["timestamp"] == claim["created"] == "2026-03-04T05:06:07Z"
    assert bundle["type"] == "collection" and bundle["meta"]["profile"] == [codes.REQUEST_BUNDLE]
    assert claim["status"] == "active"
    old_id = prior["entry"][0]["resource"]["identifier"][0]
    assert claim["identifier"][0]["system"] == old_id["system"]
    assert claim["identifier"][0]["value"] != old_id["value"]
    assert built.claim_identifier == f"{old_id['system']}|{claim['identifier'][0]['value']}"
    assert built.claim_full_url == bundle["entry"][0]["fullUrl"]
    assert built.item_sequences == (1, 2)


def test_prior_that_is_not_a_request_is_refused() -> None:
    with pytest.raises(InputError) as err:
        build_cancel_bundle({"resourceType": "Claim"}, sender=SENDER)
    assert err.value.path == "prior"
    prior = copy.deepcopy(_step("initial"))
    del prior["entry"][0]["fullUrl"]
    with pytest.raises(InputError) as err:
        build_cancel_bundle(prior, sender=SENDER)
    assert err.value.path == "prior.entry[0].fullUrl"


def test_unresolvable_reference_in_the_new_state_names_its_path() -> None:
    prior = _step("initial")
    items = copy.deepcopy(prior["entry"][0]["resource"]["item"])
    items[0]["extension"][5]["valueReference"]["reference"] = "ServiceRequest/nowhere"
    with pytest.raises(InputError) as err:
        build_update_from_claim(prior, items, sender=SENDER)
    assert err.value.path == "item[0].extension[5].valueReference.reference"


def test_new_resource_can_be_given_with_the_new_item() -> None:
    prior = _step("initial")
    items = copy.deepcopy(prior["entry"][0]["resource"]["item"])
    new = copy.deepcopy(items[0])
    new["sequence"] = 7
    new["extension"][5]["valueReference"]["reference"] = "urn:uuid:6f1c2a3b-1d2e-4f50-8a9b-0c1d2e3f4a5b"
    request = copy.deepcopy(next(e["resource"] for e in prior["entry"] if e["resource"]["resourceType"] ==
                                 "ServiceRequest"))
    request["id"] = "another"
    built = build_update_from_claim(prior, [*items, new], sender=SENDER, resources=[
        {"fullUrl": "urn:uuid:6f1c2a3b-1d2e-4f50-8a9b-0c1d2e3f4a5b", "resource": request}])
    assert _marks(built.claim)["item"][7][0] == ("added",)
    assert "urn:uuid:6f1c2a3b-1d2e-4f50-8a9b-0c1d2e3f4a5b" in {e["fullUrl"] for e in built.bundle["entry"]}
    assert _errors(built.bundle) == []


def test_cancelled_entry_cannot_be_reinstated() -> None:
    prior = _step("modify_cancel")
    items = copy.deepcopy(prior["entry"][0]["resource"]["item"])
    for item in items:
        item.pop("modifierExtension", None)
        item["extension"] = [e for e in item["extension"] if e["url"] != codes.EXT_CERTIFICATION_TYPE]
    with pytest.raises(InputError) as err:
        build_update_from_claim(prior, items, sender=SENDER)
    assert err.value.path == "item[sequence=2]"


def test_duplicate_sequence_in_the_new_state_is_refused() -> None:
    prior = _step("initial")
    items = prior["entry"][0]["resource"]["item"]
    with pytest.raises(InputError) as err:
        build_update_from_claim(prior, [items[0], items[0]], sender=SENDER)
    assert err.value.path == "item[1].sequence"


# --- from orders ---------------------------------------------------------------------------------


def _lines(*lines: Json) -> list[Json]:
    return [{"service_date": "2026-12-01", "quantity": 1, "unit": "visit", **line} for line in lines]


@pytest.fixture
def first(make_order: MakeOrder) -> PasRequest:
    order = make_order(services=_lines({"code": "72148"}, {"code": "72149"}), note="please expedite review",
                       attachments=[{"content_type": "application/pdf", "data": "QUJD"}])
    return build_request_bundle(order, sender=SENDER, now=NOW)


def _roles(bundle: Json) -> dict[str, str]:
    claim = bundle["entry"][0]["resource"]
    return {"patient": claim["patient"]["reference"], "insurer": claim["insurer"]["reference"],
            "provider": claim["provider"]["reference"], "role": claim["careTeam"][0]["provider"]["reference"],
            "coverage": claim["insurance"][0]["coverage"]["reference"]}


def test_update_from_an_edited_order(make_order: MakeOrder, first: PasRequest) -> None:
    edited = make_order(services=_lines({"code": "72148", "service_date": "2026-12-09", "sequence": 1},
                                        {"code": "99213", "sequence": 3}),
                        note="please expedite review", attachments=[{"content_type": "application/pdf",
                                                                     "data": "QUJD"}])
    built = build_update_bundle(first.bundle, edited, sender=SENDER, now=datetime(2026, 3, 5, tzinfo=UTC))
    marks = _marks(built.claim)
    assert marks["item"] == {1: (("changed",), False, frozenset({"I"})), 2: (("changed",), True, frozenset({"3"})),
                             3: (("added",), False, frozenset({"I"}))}
    assert marks["supportingInfo"] == {1: ((), False, frozenset()), 2: ((), False, frozenset())}
    assert built.order_id == edited.order_id and built.item_sequences == (1, 2, 3)
    assert built.claim["related"][0]["claim"]["reference"] == first.claim_full_url
    assert built.bundle["entry"][1] == first.bundle["entry"][0]
    # one instance per real-world thing: the patient, payer, clinic, clinician and coverage keep their fullUrls
    assert _roles(built.bundle) == _roles(first.bundle)
    urls = [e["fullUrl"] for e in built.bundle["entry"]]
    assert len(urls) == len(set(urls))
    documents = [e for e in built.bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    assert [d["fullUrl"] for d in documents] == [e["fullUrl"] for e in first.bundle["entry"]
                                                 if e["resource"]["resourceType"] == "DocumentReference"]
    assert built.bundle["timestamp"] == "2026-03-05T00:00:00Z"
    assert check_update_bundle(built.bundle, first.bundle) == []
    assert _errors(built.bundle) == []


def test_second_update_leaves_out_the_original_and_keeps_old_cancels(make_order: MakeOrder,
                                                                     first: PasRequest) -> None:
    one = make_order(services=_lines({"code": "72148", "sequence": 1}), note="please expedite review",
                     attachments=[{"content_type": "application/pdf", "data": "QUJD"}])
    update1 = build_update_bundle(first.bundle, one, sender=SENDER, now=NOW)
    two = make_order(services=_lines({"code": "72148", "sequence": 1, "quantity": 2}),
                     attachments=[{"content_type": "application/pdf", "data": "QUJD"}])
    update2 = build_update_bundle(update1.bundle, two, sender=SENDER, now=NOW)
    assert first.claim_full_url not in {e["fullUrl"] for e in update2.bundle["entry"]}
    assert update2.claim["related"][0]["claim"]["reference"] == update1.claim_full_url
    marks = _marks(update2.claim)
    assert marks["item"] == {1: (("changed",), False, frozenset({"I"})), 2: ((), True, frozenset({"3"}))}
    assert marks["supportingInfo"] == {1: ((), False, frozenset()), 2: (("changed",), True, frozenset())}
    assert check_update_bundle(update2.bundle, update1.bundle) == []
    assert _errors(update2.bundle) == []


def test_unchanged_order_gives_an_update_without_marks(make_order: MakeOrder, first: PasRequest) -> None:
    same = make_order(services=_lines({"code": "72148"}, {"code": "72149"}), note="please expedite review",
                      attachments=[{"content_type": "application/pdf", "data": "QUJD"}])
    built = build_update_bundle(first.bundle, same, sender=SENDER, now=NOW)
    assert all(m == ((), False, frozenset({"I"})) for m in _marks(built.claim)["item"].values())
    assert all(m == ((), False, frozenset()) for m in _marks(built.claim)["supportingInfo"].values())
    assert _non_claim_urls(built.bundle) == _non_claim_urls(first.bundle)


def test_cancel_of_our_own_request(first: PasRequest) -> None:
    built = build_cancel_bundle(first.bundle, sender=SENDER, now=NOW)
    assert "3" in certification_codes(built.claim)
    assert [i["sequence"] for i in built.claim["item"]] == [1, 2]
    assert all(not info_changed(i) and not is_cancelled(i) for i in built.claim["item"])
    assert check_update_bundle(built.bundle, first.bundle, cancel_all=True) == []
    assert _errors(built.bundle) == []


def test_explicit_sequences_are_used_and_must_be_unique(make_order: MakeOrder) -> None:
    order = make_order(services=_lines({"code": "72148", "sequence": 4}, {"code": "72149"}))
    assert build_request_bundle(order).item_sequences == (4, 2)
    with pytest.raises(InputError, match="sequence 2 is used by two"):
        make_order(services=_lines({"code": "72148", "sequence": 2}, {"code": "72149"}))


def test_update_bundle_is_json(make_order: MakeOrder, first: PasRequest) -> None:
    built = build_update_bundle(first.bundle, make_order(services=_lines({"code": "72148"})), sender=SENDER)
    assert json.loads(json.dumps(built.bundle)) == built.bundle

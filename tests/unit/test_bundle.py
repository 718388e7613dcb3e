from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Callable
from typing import Any

from fhir_pa.config import Sender
from fhir_pa.pas import codes
from fhir_pa.pas.bundle import build_request_bundle
from fhir_pa.pas.checks import check_request_bundle
from fhir_pa.pas.order import PriorAuthOrder
from fhir_pa.pas.references import BundleIndex, iter_references
from fhir_pa.pas.rules import UUID_V4_URN

MakeOrder = Callable[..., PriorAuthOrder]


def _ext(node: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in node.get("extension", []) if e["url"] == url]


def test_claim_first_and_every_reference_resolves_exactly_once(make_order: MakeOrder) -> None:
    request = build_request_bundle(make_order())
    bundle = request.bundle
    entries = bundle["entry"]
    assert entries[0]["resource"]["resourceType"] == "Claim"
    assert entries[0]["fullUrl"] == request.claim_full_url
    index = BundleIndex(entries)
    references = [ref for e in entries for _, ref in iter_references(e["resource"], "x")]
    assert references, "the Claim must reference its parties"
    for ref in references:
        assert len(index.resolve(ref, None)) == 1, ref
    # every entry other than the Claim is reached by some reference (nothing extra, nothing twice)
    targets = {index.resolve(ref, None)[0] for ref in references}
    assert targets == set(range(1, len(entries)))
    assert all(UUID_V4_URN.match(e["fullUrl"]) for e in entries)
    assert len({e["fullUrl"] for e in entries}) == len(entries)


def test_built_bundle_passes_all_checks(make_order: MakeOrder) -> None:
    order = make_order(
        services=[{"code": "72148", "service_date": "2026-12-01", "quantity": 1, "unit": "visit"},
                  {"code": "E0601", "code_system": "hcpcs", "service_date": "2026-12-01",
                   "service_end": "2027-03-01", "modifiers": ["RR"]}],
        attachments=[{"content_type": "application/pdf", "data": "JVBERi0=", "title": "note"}],
        note="please expedite",
        urgency="expedited",
        coverage={"member_id": "M1", "relationship": "child",
                  "subscriber": {"given": ["Pat"], "family": "Lee", "birth_date": "1960-05-06", "gender": "male",
                                 "mrn": "M0"}},
    )
    request = build_request_bundle(order)
    assert check_request_bundle(request.bundle) == []


def test_items_carry_request_and_certification_type(make_order: MakeOrder) -> None:
    order = make_order(services=[{"code": "72148", "service_date": "2026-12-01", "request_type": "SC"},
                                 {"code": "97110", "service_date": "2026-12-02"}])
    request = build_request_bundle(order)
    items = request.claim["item"]
    assert [i["sequence"] for i in items] == [1, 2] == list(request.item_sequences)
    assert _ext(items[0], codes.EXT_REQUEST_TYPE)[0]["valueCodeableConcept"]["coding"][0]["code"] == "SC"
    assert _ext(items[1], codes.EXT_CERTIFICATION_TYPE)[0]["valueCodeableConcept"]["coding"][0]["code"] == "I"
    assert items[0]["productOrService"]["coding"][0] == {"system": codes.CPT, "code": "72148"}
    assert items[1]["servicedDate"] == "2026-12-02"


def test_expedited_sets_level_of_service_and_priority(make_order: MakeOrder) -> None:
    claim = build_request_bundle(make_order(urgency="expedited")).claim
    assert _ext(claim, codes.EXT_LEVEL_OF_SERVICE)[0]["valueCodeableConcept"]["coding"][0]["code"] == "U"
    assert claim["priority"]["coding"][0]["code"] == "stat"
    standard = build_request_bundle(make_order()).claim
    assert not _ext(standard, codes.EXT_LEVEL_OF_SERVICE)
    assert standard["priority"]["coding"][0]["code"] == "normal"


def test_attachment_is_inline_document_with_document_information(make_order: MakeOrder) -> None:
    request = build_request_bundle(make_order(attachments=[{"content_type": "text/plain", "data": "aGk="}]))
    info = request.claim["supportingInfo"][0]
    assert info["category"]["coding"][0]["code"] == "additionalInformation"
    assert _ext(info, codes.EXT_DOCUMENT_INFORMATION)
    index = BundleIndex(request.bundle["entry"])
    doc = index.resource(index.resolve(info["valueReference"]["reference"], None)[0])
    assert doc["resourceType"] == "DocumentReference"
    assert doc["content"][0]["attachment"]["data"] == "aGk="
    assert "url" not in doc["content"][0]["attachment"]


def test_identifiers_are_fresh_per_build_and_reproducible_with_new_id(make_order: MakeOrder) -> None:
    order = make_order()
    first, second = build_request_bundle(order), build_request_bundle(order)
    assert first.bundle_identifier != second.bundle_identifier
    assert first.claim_identifier != second.claim_identifier

    def counter() -> Callable[[], str]:
        numbers = itertools.count()
        return lambda: str(uuid.UUID(int=next(numbers), version=4))

    fixed = build_request_bundle(order, new_id=counter(), now=None)
    again = build_request_bundle(order, new_id=counter(), now=None)
    assert fixed.bundle_identifier == again.bundle_identifier


def test_sender_identifiers_go_into_transmission_identifiers(make_order: MakeOrder) -> None:
    sender = Sender(application_sender_code="EHR1", application_receiver_code="PAYR", interchange_sender_id="ISA6",
                    trn_originator="1234567890")
    request = build_request_bundle(make_order(), sender=sender)
    ext = _ext(request.claim, codes.EXT_TRANSMISSION_IDS)[0]
    values = {e["url"]: e["valueString"] for e in ext["extension"]}
    assert values == {"applicationSenderCode": "EHR1", "applicationReceiverCode": "PAYR",
                      "interchangeSenderID": "ISA6"}
    assert request.claim["identifier"][0]["system"] == "urn:trnorg:1234567890"


def test_build_does_not_share_state_between_orders(make_order: MakeOrder) -> None:
    order = make_order()
    before = copy.deepcopy(order.model_dump())
    build_request_bundle(order)
    assert order.model_dump() == before

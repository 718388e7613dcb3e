"""Decisions and response Bundles built without a server: rule matching, dates, references."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from fhir_pa.pas.references import BundleIndex, iter_references
from fhir_pa_sandbox.decide import decide, service_date
from fhir_pa_sandbox.responses import build_response
from fhir_pa_sandbox.rules import Rule, RulesTable, load_rules
from tests.integration.pas_bundles import Service, request_bundle

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def _claim(bundle: dict[str, Any]) -> dict[str, Any]:
    claim: dict[str, Any] = bundle["entry"][0]["resource"]
    return claim


def test_service_date_comes_from_date_or_period_start() -> None:
    assert service_date({"servicedDate": "2026-12-01"}) == date(2026, 12, 1)
    assert service_date({"servicedPeriod": {"start": "2026-12-05", "end": "2026-12-09"}}) == date(2026, 12, 5)
    assert service_date({"servicedDate": "2026-12"}) is None
    assert service_date({}) is None


def test_decide_matches_each_item_and_numbers_only_what_needs_one() -> None:
    bundle = request_bundle("72148", "97110", "27447", "E0601", "99999", "11111")
    decisions = decide(_claim(bundle), load_rules())
    assert [d.sequence for d in decisions] == [1, 2, 3, 4, 5, 6]
    assert [d.rule.action for d in decisions] == ["approve", "deny", "pend", "modify", "error", "approve"]
    assert [d.matched_code for d in decisions] == ["72148", "97110", "27447", "E0601", "99999", None]
    numbers = [d.number for d in decisions]
    assert numbers[1] is None and numbers[4] is None
    assert numbers[2] is not None and numbers[2].startswith("PEND-")
    assert len({n for n in numbers if n}) == 4  # all distinct


def test_response_references_resolve_inside_the_response_bundle() -> None:
    bundle = request_bundle("72148", "97110")
    decisions = decide(_claim(bundle), load_rules())
    built = build_response(bundle, decisions, fhir_base="http://127.0.0.1:1/fhir", now=NOW)
    entries = built.bundle["entry"]
    index = BundleIndex(entries)
    claim_url = bundle["entry"][0]["fullUrl"]
    for position, entry in enumerate(entries):
        for path, ref in iter_references(entry["resource"], "resource"):
            if ref == claim_url:
                continue  # ClaimResponse.request points at the Claim, which PAS does not echo
            assert len(index.resolve(ref, entry["fullUrl"])) == 1, (position, path)
    assert built.claim_response["created"] == "2026-11-22T09:30:00Z"
    assert built.preauth_ref is not None
    assert built.claim_response["preAuthPeriod"]["start"] == "2026-12-01"


def test_nothing_approved_means_no_preauth_ref() -> None:
    bundle = request_bundle("97110", "27447")
    built = build_response(bundle, decide(_claim(bundle), load_rules()), fhir_base="http://x/fhir", now=NOW)
    assert built.preauth_ref is None and "preAuthRef" not in built.claim_response


def test_item_without_service_date_is_valid_from_today() -> None:
    table = RulesTable(default=Rule("approve", days=10))
    bundle = request_bundle(Service("72148", service_date=None))
    built = build_response(bundle, decide(_claim(bundle), table), fhir_base="http://x/fhir", now=NOW)
    [item] = built.claim_response["item"]
    period = next(e for e in item["extension"] if e["url"].endswith("itemPreAuthPeriod"))["valuePeriod"]
    assert period == {"start": "2026-11-22", "end": "2026-12-01"}

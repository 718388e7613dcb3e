"""Our profile data (profiles/pas) must agree with the official PAS 2.2.1 StructureDefinitions."""

from __future__ import annotations

import json
import tarfile
from functools import cache
from typing import Any

import pytest

from fhir_pa.pas.elements import matches_pattern
from fhir_pa.pas.profiles import load_profile, profile_names
from tests.conftest import fixture_path


@cache
def _structure_definitions() -> dict[str, dict[str, Any]]:
    archive = fixture_path("packages", "davinci_pas_2.2.1.tgz")
    found: dict[str, dict[str, Any]] = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.name.startswith("package/StructureDefinition-") and member.name.endswith(".json"):
                handle = tar.extractfile(member)
                assert handle is not None
                sd = json.load(handle)
                found[sd["url"]] = sd
    return found


def _snapshot(url: str) -> dict[str, dict[str, Any]]:
    sds = _structure_definitions()
    assert url in sds, f"{url} is not a StructureDefinition of the PAS 2.2.1 package"
    return {element["id"]: element for element in sds[url]["snapshot"]["element"]}


@pytest.mark.parametrize("name", profile_names("pas"))
def test_profile_data_matches_structure_definition(name: str) -> None:
    profile = load_profile("pas", name)
    elements = _snapshot(profile.url)
    assert profile.version == "2.2.1"
    for rule in profile.elements:
        assert rule.id in elements, f"{name}: {rule.id} is not an element of {profile.url}"
        official = elements[rule.id]
        assert rule.min == official["min"], f"{name}: {rule.id} min {rule.min} != {official['min']}"
        # "*" in our data means we leave the upper bound to the base R4 structure check
        if rule.max != "*":
            assert rule.max == official["max"], f"{name}: {rule.id} max {rule.max} != {official['max']}"
        if rule.pattern is not None:
            key, value = rule.pattern
            assert official.get(key) == value, f"{name}: {rule.id} {key} differs from the profile"


@pytest.mark.parametrize("name", profile_names("pas"))
def test_slice_definitions_match_structure_definition(name: str) -> None:
    profile = load_profile("pas", name)
    elements = _snapshot(profile.url)
    for slice_id, rule in profile.slices.items():
        assert slice_id in elements, f"{name}: slice {slice_id} not in {profile.url}"
        if "url" in rule:
            declared = [p.split("|")[0] for t in elements[slice_id].get("type", []) for p in t.get("profile", [])]
            assert declared == [rule["url"]], f"{name}: {slice_id} extension url differs"
        else:
            own = [v for k, v in elements[slice_id].items() if k.startswith(("pattern", "fixed"))]
            for child, expected in rule["pattern"].items():
                if own:  # the slice itself carries the pattern (e.g. patternIdentifier)
                    assert matches_pattern(own[0], {child: expected}), f"{name}: {slice_id} pattern differs"
                    continue
                official = elements[f"{slice_id}.{child}"]
                patterns = [v for k, v in official.items() if k.startswith(("pattern", "fixed"))]
                assert patterns, f"{name}: {slice_id}.{child} has no pattern in the profile"
                assert matches_pattern(patterns[0], expected), f"{name}: {slice_id}.{child} pattern differs"


def test_every_profile_we_emit_has_data() -> None:
    from fhir_pa.pas import codes

    emitted = {codes.REQUEST_BUNDLE, codes.CLAIM, codes.CLAIM_UPDATE, codes.BENEFICIARY, codes.SUBSCRIBER,
               codes.COVERAGE, codes.INSURER, codes.REQUESTOR, codes.PRACTITIONER, codes.PRACTITIONER_ROLE,
               codes.SERVICE_REQUEST, codes.DOCUMENT_REFERENCE}
    assert emitted <= {load_profile("pas", n).url for n in profile_names("pas")}

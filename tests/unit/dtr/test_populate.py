"""Prepopulation of the shared DTR packages: RAD/pat015 against the test kit's expected response, dinner, HOT."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from fhir_pa.dtr.origin import ORIGIN_URL
from fhir_pa.dtr.prepopulate import PopulateResult, populate, read_packages
from fhir_pa.fhir.memory import MemoryFhirServer
from tests.conftest import load_fixture

RAD_NOW = "2024-04-07T12:00:00.000Z"
RAD_LAUNCH = {"device_request": "DeviceRequest/devreqe0470", "coverage": "Coverage/cov015"}
#: The test kit's mock EHR serves Practitioner/pra1234 separately (it is not in pat015's Bundle, dtr.md §5.10);
#: this stand-in carries the name/NPI the kit's expected response shows, so the practitioner items can be compared.
STAND_IN_PRACTITIONER = {"resourceType": "Practitioner", "id": "pra1234",
                         "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1122334455"}],
                         "name": [{"use": "official", "family": "Doe", "given": ["Jane", "B"]}]}


def _answers(items: list[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    for item in items:
        if item.get("answer"):
            yield item["linkId"], item["answer"]
        yield from _answers(item.get("item") or [])
        for answer in item.get("answer") or []:
            yield from _answers(answer.get("item") or [])


def _value(answer: Mapping[str, Any], *, display: bool) -> Any:
    key, val = next((k, v) for k, v in answer.items() if k.startswith("value"))
    if key == "valueCoding":
        return key, val.get("system"), val.get("code"), val.get("display") if display else None
    return key, val


def _source(answer: Mapping[str, Any]) -> str | None:
    ext = next((e for e in answer.get("extension") or [] if e["url"] == ORIGIN_URL), None)
    return next((p["valueCode"] for p in ext["extension"] if p["url"] == "source"), None) if ext else None


def _rad(version: str) -> PopulateResult:
    server = MemoryFhirServer([STAND_IN_PRACTITIONER])
    with httpx.Client(base_url=server.base_url, transport=server.transport()) as client:
        return populate(load_fixture("dtr", "packages", "rad-package-bundle.testkit.json"),
                        load_fixture("dtr", "patients", "pat015-bundle.testkit.json"), launch=RAD_LAUNCH, now=RAD_NOW,
                        version="2.0.1" if version == "2.0.1" else "2.2", fhir=client)


def test_rad_pat015_matches_the_test_kit_expected_response_item_by_item() -> None:
    kit = load_fixture("dtr", "questionnaire-responses", "rad-prepopulated-qr.testkit.json")
    expected = dict(_answers(kit["item"]))
    result = _rad("2.0.1")
    got = dict(_answers(result.response["item"]))
    assert sorted(got) == sorted(expected)  # same answered items, none extra, none missing (17)
    for link, answers in expected.items():
        # displays of option-less codings are the DTR RI's own "display - ICD-10 - code" rendering; compare codes
        with_display = link not in ("3.1", "3.2")
        assert [_value(a, display=with_display) for a in got[link]] == \
               [_value(a, display=with_display) for a in answers], link
        assert all(_source(a) == "auto" for a in got[link]), link
    assert result.errors == []
    assert len(expected) == 17


def test_rad_pat015_in_dtr_2_2_shape() -> None:
    result = _rad("2.2")
    qr = result.response
    assert qr["status"] == "in-progress"
    assert qr["questionnaire"] == "urn:inferno:dtr-test-kit:respiratory-assist-devices"
    assert qr["subject"] == {"reference": "Patient/pat015"}
    urls = {(e["url"].rsplit("/", 1)[-1], e["valueReference"]["reference"]) for e in qr["extension"]}
    assert urls == {("qr-coverage", "Coverage/cov015"), ("qr-context", "DeviceRequest/devreqe0470")}
    for link, answers in _answers(qr["item"]):
        for answer in answers:
            origin = next(e for e in answer["extension"] if e["url"] == ORIGIN_URL)
            assert origin["extension"] == [{"url": "source", "valueCode": "auto-client"}], link  # no author (dtrx-1)
    got = dict(_answers(qr["item"]))
    assert got["PND.5"][0]["valueDate"] == "2020-07-01"  # a DateTime list → its own date, not UTC-shifted
    assert got["4.6.1"][0]["valueCoding"]["display"].startswith("E0470 - ")  # matched against answerOption


def test_rad_without_the_practitioner_leaves_practitioner_items_empty_not_failed() -> None:
    result = populate(load_fixture("dtr", "packages", "rad-package-bundle.testkit.json"),
                      load_fixture("dtr", "patients", "pat015-bundle.testkit.json"), launch=RAD_LAUNCH, now=RAD_NOW)
    got = dict(_answers(result.response["item"]))
    assert "PND.1" not in got and "SIGPNP.2" not in got
    assert got["PBD.1"][0]["valueString"] == "Oster"
    assert result.errors == []


def test_dinner_static_prefills_names_and_leaves_the_rest_to_the_user() -> None:
    expected = load_fixture("dtr", "questionnaire-responses", "dinner-static-qr.testkit.json")
    auto = {link: a for link, a in _answers(expected["item"]) if _source(a[0]) == "auto"}
    result = populate(load_fixture("dtr", "packages", "dinner-static-package-bundle.testkit.json"),
                      load_fixture("dtr", "patients", "pat015-bundle.testkit.json"), now=RAD_NOW, version="2.0.1")
    got = dict(_answers(result.response["item"]))
    assert sorted(got) == sorted(auto) == ["PBD.1", "PBD.2"]
    for link, answers in auto.items():
        assert [_value(a, display=False) for a in got[link]] == [_value(a, display=False) for a in answers]
    assert result.response["questionnaire"] == expected["questionnaire"]


def test_hot_package_against_the_hand_made_bundle() -> None:
    packages = read_packages(load_fixture("dtr", "packages", "hot-package-output-params.crd-ri.json"))
    assert [p.questionnaire["id"] for p in packages] == ["HomeOxygenTherapy", "HomeOxygenTherapyAdditional",
                                                         "HomeOxygenTherapyFaceToFace", "HomeOxygenTherapyLab"]
    chart = load_fixture("dtr", "patients", "hot-handmade-bundle.json")
    result = populate(packages[0], chart, launch={"device_request": "DeviceRequest/dr1"},
                      now="2026-01-15T10:00:00.000-05:00")
    got = dict(_answers(result.response["item"]))
    # values read off the engine's defines (oracle-output/hot-handmade.oracle.json)
    assert [a["valueCoding"]["code"] for a in got["3.1.1"]] == ["J44.9"]  # c2 is provisional
    assert [a["valueCoding"]["code"] for a in got["3.1.2"]] == ["E11.9"]
    assert got["3.2"][0]["valueQuantity"] == {"value": 87, "unit": "%", "system": "http://unitsofmeasure.org",
                                              "code": "%"}
    assert got["3.3"][0]["valueQuantity"]["value"] == 54.5
    assert got["3.7"][0]["valueBoolean"] is True
    assert got["4.2"][0]["valueInteger"] == 6  # LengthOfNeed 5.979 months, rounded, with a warning
    assert any(w.link_id == "4.2" for w in result.warnings)
    assert got["5.2"][0]["valueCoding"]["code"] == "Concentrator"
    assert got["5.1b"][0]["valueBoolean"] is False
    # 3.8 to 3.11 depend on 3.2 >= 89 %: the saturation is 87 %, so they stay disabled even though 3.10 has CQL
    assert not {"3.8", "3.9", "3.10", "3.11"} & set(got)
    # 4.6 / 5.4 carry the misspelt `hhttp://` initialExpression URL: ignored as the RI does, but reported
    assert "4.6" not in got and {w.link_id for w in result.warnings} >= {"4.6", "5.4"}
    # linkId 7 carries inline ELM JSON (Today() + 14 days), evaluated with the same `now`
    assert got["7"] == [{"valueDate": "2026-01-29", "extension": got["7"][0]["extension"]}]
    assert result.errors == []

"""The sandbox rules table: the packaged file, and clear errors (file + JSON path) for bad ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_pa.errors import ConfigurationError
from fhir_pa_sandbox.rules import CODE_SYSTEMS, load_rules


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_packaged_rules_cover_the_demo_codes() -> None:
    table = load_rules()
    actions = {code: rule.action for code, rule in table.codes.items()}
    assert {"72148": "approve", "97110": "deny", "27447": "pend", "E0601": "modify", "99999": "error"}.items() \
        <= actions.items()
    assert table.default.action == "approve"
    deny = table.codes["97110"]
    assert deny.reason is not None and deny.reason.code and deny.note
    modify = table.codes["E0601"]
    assert modify.authorized is not None and modify.authorized.system == CODE_SYSTEMS["hcpcs"]
    error = table.codes["99999"].error
    assert error is not None and error.code and error.followup == "C"


def test_rule_lookup_takes_the_first_known_code_else_the_default() -> None:
    table = load_rules()
    assert table.rule_for(["00000", "97110"]) == ("97110", table.codes["97110"])
    assert table.rule_for(["00000"]) == (None, table.default)
    assert table.rule_for([]) == (None, table.default)


def test_a_custom_file_replaces_the_packaged_one(tmp_path: Path) -> None:
    path = _write(tmp_path, {"default": {"action": "pend", "note": "all pended"},
                             "codes": {"A1234": {"action": "approve", "days": 7}}})
    table = load_rules(path)
    assert table.source == str(path)
    assert table.default.action == "pend" and table.codes["A1234"].days == 7


@pytest.mark.parametrize(("data", "where", "words"), [
    ({"codes": {}}, "$.default", "required"),
    ({"default": {"action": "maybe"}}, "$.default.action", "one of"),
    ({"default": {"action": "approve"}, "codes": {"97110": {"action": "deny"}}}, '$.codes["97110"].reason',
     "required"),
    ({"default": {"action": "approve"}, "codes": {"97110": {"action": "deny", "reason": {"display": "x"}}}},
     '$.codes["97110"].reason.code', "required"),
    ({"default": {"action": "approve", "dayz": 3}}, "$.default.dayz", "unknown key"),
    ({"default": {"action": "pend", "days": 3}}, "$.default.days", "unknown key"),
    ({"default": {"action": "approve", "days": 0}}, "$.default.days", "whole number"),
    ({"default": {"action": "approve"}, "codes": {"E0601": {"action": "modify", "authorized": {
        "code": "E0601", "system": "icd"}}}}, '$.codes.E0601.authorized.system', "system"),
    ({"default": {"action": "approve"}, "codes": {"E0601": {"action": "modify", "authorized": {
        "code": "E0601", "quantity": -1}}}}, '$.codes.E0601.authorized.quantity', "positive"),
    ({"default": {"action": "approve"}, "codes": {"99999": {"action": "error"}}}, '$.codes["99999"].error',
     "required"),
    ({"default": {"action": "approve"}, "codes": {"72 148": {"action": "approve"}}}, '$.codes["72 148"]',
     "not a CPT/HCPCS code"),
    ({"default": {"action": "approve"}, "codes": []}, "$.codes", "JSON object"),
    (["approve"], "$", "JSON object"),
])
def test_bad_rules_name_the_file_and_the_json_path(data: Any, where: str, words: str, tmp_path: Path) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ConfigurationError) as err:
        load_rules(path)
    assert err.value.path == where
    assert str(path) in err.value.message and words in err.value.message
    assert where in str(err.value)


def test_invalid_json_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text('{"default": {"action": "approve"},\n "codes": {,}}', encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"rules\.json is not valid JSON: .* line 2"):
        load_rules(path)


def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_rules(tmp_path / "absent.json")

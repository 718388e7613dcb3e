"""The sandbox payer's CRD rules: what coverage information each CPT/HCPCS code gets (``data/crd_rules.json``).

::

    {"member_pattern": "^M5\\d{5}$",
     "default": {"pa": "no-auth"},
     "codes": {"94640": {"pa": "auth-needed", "doc": ["clinical"], "doc_purpose": ["withpa"],
                         "questionnaires": ["http://.../Questionnaire/home-nebulizer|1.0.0"]},
               "77067": {"pa": "satisfied", "satisfied_pa_id": "SBX-PA-77067"}}}

``pa`` is ``no-auth``, ``auth-needed`` or ``satisfied`` (which needs ``satisfied_pa_id``); ``doc`` lists
``clinical`` / ``admin`` / ``patient`` and then needs ``doc_purpose``; ``questionnaires`` need ``doc``. A member id
that does not match ``member_pattern`` is not covered (reason ``no-member-found``). Mistakes are a
ConfigurationError naming the file and JSON path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from fhir_pa_sandbox.config import packaged_data
from fhir_pa_sandbox.jsonfile import JsonFile, child

PA_VALUES = ("no-auth", "auth-needed", "satisfied")
DOC_VALUES = ("clinical", "admin", "patient")
PURPOSES = ("withpa", "withclaim", "withorder", "retain-doc")
_KEYS = {"pa", "doc", "doc_purpose", "questionnaires", "satisfied_pa_id", "label"}


@dataclass(frozen=True)
class CrdRule:
    pa: str
    doc: tuple[str, ...] = ()
    doc_purpose: tuple[str, ...] = ()
    questionnaires: tuple[str, ...] = ()
    satisfied_pa_id: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class CrdRules:
    member_pattern: re.Pattern[str]
    default: CrdRule
    codes: Mapping[str, CrdRule]

    def for_code(self, code: str) -> CrdRule:
        return self.codes.get(code, self.default)

    def known_member(self, member_ids: set[str]) -> bool:
        return any(self.member_pattern.match(member) for member in member_ids)


def _rule(file: JsonFile, raw: Any, path: str) -> CrdRule:
    holder = file.obj(raw, path, allowed=_KEYS, required=("pa",))
    pa = file.text(holder["pa"], child(path, "pa"))
    if pa not in PA_VALUES:
        raise file.error(f"pa must be one of {', '.join(PA_VALUES)}", child(path, "pa"))
    lists = {key: file.text_list(holder.get(key, []), child(path, key))
             for key in ("doc", "doc_purpose", "questionnaires")}
    for key, allowed in (("doc", DOC_VALUES), ("doc_purpose", PURPOSES)):
        bad = [v for v in lists[key] if v not in allowed]
        if bad:
            raise file.error(f"{bad[0]!r} is not one of {', '.join(allowed)}", child(path, key))
    if lists["doc"] and not lists["doc_purpose"]:
        raise file.error("doc needs doc_purpose (CRD invariant q8 needs a reason too; the sandbox gives one)",
                         child(path, "doc_purpose"))
    if lists["questionnaires"] and not lists["doc"]:
        raise file.error("questionnaires need doc (CRD invariant q1)", child(path, "questionnaires"))
    satisfied = file.optional_text(holder, "satisfied_pa_id", path)
    if (pa == "satisfied") != (satisfied is not None):
        raise file.error("satisfied_pa_id is given exactly when pa is satisfied (CRD invariant q5)",
                         child(path, "satisfied_pa_id"))
    return CrdRule(pa, lists["doc"], lists["doc_purpose"], lists["questionnaires"], satisfied,
                   file.optional_text(holder, "label", path))


def load_crd_rules(path: Path | Traversable | None = None) -> CrdRules:
    file = JsonFile(path or packaged_data("crd_rules.json"))
    top = file.obj(file.data, "$", allowed={"about", "member_pattern", "default", "codes"},
                   required=("member_pattern", "codes"))
    pattern_text = file.text(top["member_pattern"], "$.member_pattern")
    try:
        pattern = re.compile(pattern_text)
    except re.error as exc:
        raise file.error(f"member_pattern is not a regular expression: {exc}", "$.member_pattern") from exc
    codes = file.obj(top["codes"], "$.codes")
    return CrdRules(pattern, _rule(file, top.get("default", {"pa": "no-auth"}), "$.default"),
                    {code: _rule(file, raw, child("$.codes", code)) for code, raw in codes.items()})

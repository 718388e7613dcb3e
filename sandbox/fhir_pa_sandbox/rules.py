"""The sandbox payer's decision table: which action each CPT/HCPCS code gets.

The table is a JSON file people edit (``data/rules.json`` by default)::

    {"default": {"action": "approve", "days": 90},
     "codes": {"97110": {"action": "deny", "reason": {"code": "...", "display": "..."}, "note": "..."}}}

Actions: ``approve`` (A1, an authorization number valid ``days`` from the service date), ``deny`` (A3 with an
X12 886 ``reason``), ``pend`` (A4 with an administration reference number), ``modify`` (A6, and the
``authorized`` service comes back as an ``addItem``) and ``error`` (``ClaimResponse.error`` with an X12 901
code).

A ``pend`` is decided later, as a real payer would: ``"then"`` is the final action (``approve`` by default,
``deny`` or ``modify``) and ``"after_seconds"`` how long the review takes (2 s by default, multiplied by
``SandboxConfig.pend_delay_scale``). A pend with an explicit ``then`` may carry what its final action needs:
``days``, ``reason`` (optional for a later deny) and ``authorized`` (required for a later modify).

A mistake in the file is a :class:`~fhir_pa.errors.ConfigurationError` naming the file and JSON path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal, get_args

from fhir_pa.pas import codes
from fhir_pa_sandbox.config import packaged_data
from fhir_pa_sandbox.jsonfile import JsonFile, child

Action = Literal["approve", "deny", "pend", "modify", "error"]
ACTIONS: tuple[str, ...] = get_args(Action)
#: What a pended item can become once the sandbox's "clinical review" is over.
LATER_ACTIONS: tuple[str, ...] = ("approve", "deny", "modify")
#: Seconds a pend takes to be decided when its rule does not say (before ``pend_delay_scale``).
DEFAULT_PEND_SECONDS = 2.0

#: Short names accepted for ``authorized.system``; a full URL is accepted too.
CODE_SYSTEMS = {"cpt": codes.CPT, "hcpcs": codes.HCPCS}

_CODE_KEY = re.compile(r"^[A-Za-z0-9]{1,12}$")
_COMMON = {"action", "label", "note"}
_ALLOWED: dict[str, set[str]] = {
    "approve": _COMMON | {"days"},
    "deny": _COMMON | {"reason"},
    "pend": _COMMON | {"then", "after_seconds", "days", "reason", "authorized"},
    "modify": _COMMON | {"days", "authorized"},
    "error": _COMMON | {"error"},
}


@dataclass(frozen=True)
class Reason:
    """Why a service was denied: an X12 886 review decision reason code."""

    code: str
    display: str | None = None


@dataclass(frozen=True)
class AuthorizedService:
    """What the payer authorizes instead of the requested service (``modify``)."""

    code: str
    #: Code system URL; None keeps the requested item's system.
    system: str | None = None
    modifiers: tuple[str, ...] = ()
    #: None keeps the requested quantity.
    quantity: float | None = None
    unit: str | None = None


@dataclass(frozen=True)
class RuleError:
    """A processing error (X12 AAA): reject reason (901), follow-up action (889), X12 element."""

    code: str
    display: str | None = None
    followup: str = "C"
    element: str | None = None


@dataclass(frozen=True)
class Rule:
    action: Action
    label: str | None = None
    #: Text for ``ClaimResponse.processNote`` (denial reason, pend explanation, modification).
    note: str | None = None
    #: Days an approval or modification stays valid, counted from the service date.
    days: int = 90
    reason: Reason | None = None
    authorized: AuthorizedService | None = None
    error: RuleError | None = None
    #: ``pend`` only: the action taken once the pend is decided, and after how many seconds.
    then: Action | None = None
    after_seconds: float = DEFAULT_PEND_SECONDS

    def later(self) -> Rule:
        """The rule a pended item is finally decided by (``then``; approve when unset)."""
        return Rule(action=self.then or "approve", label=self.label, days=self.days, reason=self.reason,
                    authorized=self.authorized)


@dataclass(frozen=True)
class RulesTable:
    default: Rule
    codes: Mapping[str, Rule] = field(default_factory=dict)
    source: str = "<built-in>"

    def rule_for(self, candidates: Iterable[str]) -> tuple[str | None, Rule]:
        """The first candidate code with a rule of its own (and that code), else the default rule."""
        for code in candidates:
            rule = self.codes.get(code)
            if rule is not None:
                return code, rule
        return None, self.default


class _Parser:
    def __init__(self, file: JsonFile) -> None:
        self.file = file

    def table(self) -> RulesTable:
        root = self.file.obj(self.file.data, "$", allowed={"about", "default", "codes"},
                             required=("default",))
        default = self.rule(root["default"], "$.default")
        raw_codes = self.file.obj(root.get("codes", {}), "$.codes")
        table: dict[str, Rule] = {}
        for key, value in raw_codes.items():
            where = child("$.codes", key)
            if not _CODE_KEY.match(key):
                raise self.file.error(f"{key!r} is not a CPT/HCPCS code (letters and digits only)", where)
            table[key] = self.rule(value, where)
        return RulesTable(default=default, codes=table, source=self.file.name)

    def rule(self, value: Any, where: str) -> Rule:
        raw = self.file.obj(value, where, required=("action",))
        action = raw["action"]
        if action not in ACTIONS:
            raise self.file.error(f"action must be one of {', '.join(ACTIONS)}", child(where, "action"))
        self.file.obj(raw, where, allowed=_ALLOWED[action])
        days = self.file.integer(raw["days"], child(where, "days"), minimum=1) if "days" in raw else 90
        rule = Rule(action=action, label=self.file.optional_text(raw, "label", where),
                    note=self.file.optional_text(raw, "note", where), days=days)
        if action == "deny":
            return replace(rule, reason=self.reason(raw, where))
        if action == "modify":
            return replace(rule, authorized=self.authorized(raw, where))
        if action == "error":
            return replace(rule, error=self.error(raw, where))
        if action == "pend":
            return self.pend(rule, raw, where)
        return rule

    def pend(self, rule: Rule, raw: Mapping[str, Any], where: str) -> Rule:
        if "then" not in raw:  # what the pend becomes must be said before saying how
            self.file.obj(raw, where, allowed=_COMMON | {"after_seconds"})
        then = raw.get("then", "approve")
        if then not in LATER_ACTIONS:
            raise self.file.error(f"then must be one of {', '.join(LATER_ACTIONS)}", child(where, "then"))
        after = raw.get("after_seconds", DEFAULT_PEND_SECONDS)
        if isinstance(after, bool) or not isinstance(after, int | float) or not 0 <= after <= 86_400:
            raise self.file.error("must be a number of seconds from 0 to 86400", child(where, "after_seconds"))
        reason = self.reason(raw, where) if "reason" in raw else None
        authorized = self.authorized(raw, where) if then == "modify" else None
        if then != "modify" and "authorized" in raw:
            raise self.file.error("authorized applies only when then is modify", child(where, "authorized"))
        return replace(rule, then=then, after_seconds=float(after), reason=reason, authorized=authorized)

    def reason(self, raw: Mapping[str, Any], where: str) -> Reason:
        self.file.obj(raw, where, required=("reason",))
        path = child(where, "reason")
        data = self.file.obj(raw["reason"], path, allowed={"code", "display"}, required=("code",))
        return Reason(self.file.text(data["code"], child(path, "code")),
                      self.file.optional_text(data, "display", path))

    def authorized(self, raw: Mapping[str, Any], where: str) -> AuthorizedService:
        self.file.obj(raw, where, required=("authorized",))
        path = child(where, "authorized")
        data = self.file.obj(raw["authorized"], path,
                             allowed={"code", "system", "modifiers", "quantity", "unit"}, required=("code",))
        system = self.file.optional_text(data, "system", path)
        if system is not None and system not in CODE_SYSTEMS and not system.startswith(("http://", "https://")):
            raise self.file.error(f"system must be {' or '.join(CODE_SYSTEMS)} or a code system URL",
                                  child(path, "system"))
        return AuthorizedService(
            code=self.file.text(data["code"], child(path, "code")),
            system=CODE_SYSTEMS.get(system, system) if system else None,
            modifiers=(self.file.text_list(data["modifiers"], child(path, "modifiers"))
                       if "modifiers" in data else ()),
            quantity=(self.file.number(data["quantity"], child(path, "quantity"))
                      if "quantity" in data else None),
            unit=self.file.optional_text(data, "unit", path),
        )

    def error(self, raw: Mapping[str, Any], where: str) -> RuleError:
        self.file.obj(raw, where, required=("error",))
        path = child(where, "error")
        data = self.file.obj(raw["error"], path, allowed={"code", "display", "followup", "element"},
                             required=("code",))
        return RuleError(
            code=self.file.text(data["code"], child(path, "code")),
            display=self.file.optional_text(data, "display", path),
            followup=self.file.optional_text(data, "followup", path) or "C",
            element=self.file.optional_text(data, "element", path),
        )


def parse_rules(file: JsonFile) -> RulesTable:
    """Validate a loaded rules file into a :class:`RulesTable`."""
    return _Parser(file).table()


def load_rules(path: Path | None = None) -> RulesTable:
    """Load a rules file; None loads the packaged ``data/rules.json``."""
    source: Path | Traversable = path if path is not None else packaged_data("rules.json")
    name = str(path) if path is not None else "fhir_pa_sandbox/data/rules.json"
    return parse_rules(JsonFile(source, name))

"""Map CQL / FHIRPath results onto QuestionnaireResponse answers of the item's type.

DTR leaves this mapping open (dtr.md §5 pitfall 11), so the rules are explicit here: empty → no answer; a list
fills a repeating item, otherwise its first value is used and a warning is recorded; a DateTime for a ``date``
item keeps its *own* calendar date (never shifted to UTC); codes for choice items are matched against the item's
answer options (answerOption or an expanded answerValueSet) so the answer carries the option's display.
Warnings never contain patient values — only what kind of mismatch happened.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .elm import Code, Concept, CqlDate, CqlDateTime, CqlTime, FhirNode, Quantity, Tuple
from .elm.fhir import primitive_value

UCUM = "http://unitsofmeasure.org"
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?")
_TEXT_TYPES = {"string": "valueString", "text": "valueString", "url": "valueUri"}


@dataclass
class Mapped:
    """The answers for one item (no origin yet) and what had to be bent to get them."""

    answers: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Unmappable(ValueError):
    """A result value of a kind the item type cannot hold (the message names kinds, never values)."""


# --- normalising engine / FHIRPath values ----------------------------------------------------------------------------

def _flatten(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)) and not isinstance(value, Tuple):
        return [v for item in value for v in _flatten(item)]
    if isinstance(value, FhirNode) and value.is_primitive:
        raw = primitive_value(value)
        return [] if raw is None else [raw]
    return [value]


def _coding_of_code(code: Code) -> dict[str, Any]:
    return {k: v for k, v in (("system", code.system), ("version", code.version), ("code", code.code),
                              ("display", code.display)) if v is not None}


def codings(value: Any) -> list[dict[str, Any]]:
    """The Codings a value stands for (Code, Concept, Coding/CodeableConcept JSON or node); [] if none."""
    if isinstance(value, Code):
        return [_coding_of_code(value)]
    if isinstance(value, Concept):
        return [_coding_of_code(c) for c in value.codes]
    raw = value.json if isinstance(value, FhirNode) else value
    if isinstance(raw, Mapping):
        if isinstance(raw.get("coding"), list):
            return [dict(c) for c in raw["coding"] if isinstance(c, Mapping)]
        if "code" in raw and not raw.get("resourceType") and ("system" in raw or "display" in raw
                                                              or set(raw) <= {"code", "version", "id", "extension"}):
            return [dict(raw)]
    return []


def _kind(value: Any) -> str:
    if isinstance(value, FhirNode):
        return value.type
    return type(value).__name__


def _number(value: Any) -> float | int | decimal.Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, decimal.Decimal)):
        return value
    if isinstance(value, Quantity):
        return value.value
    raw = value.json if isinstance(value, FhirNode) else value
    if isinstance(raw, Mapping) and isinstance(raw.get("value"), (int, float, decimal.Decimal)) and "unit" in raw:
        return raw["value"]  # type: ignore[no-any-return]
    if isinstance(value, str):
        try:
            return decimal.Decimal(value.strip())
        except decimal.InvalidOperation:
            return None
    return None


def _json_number(n: float | int | decimal.Decimal) -> float | int:
    if isinstance(n, decimal.Decimal):
        return int(n) if n == n.to_integral_value() and "." not in str(n) else float(n)
    if isinstance(n, float) and n.is_integer() and abs(n) < 2**53:
        return int(n)
    return n


def _date(value: Any) -> str | None:
    if isinstance(value, CqlDateTime):
        return str(value.date())
    if isinstance(value, CqlDate):
        return str(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()[:10]
    if isinstance(value, str):
        m = _DATE.match(value.lstrip("@"))
        return m.group(0) if m else None
    return None


def _datetime(value: Any) -> str | None:
    if isinstance(value, (CqlDateTime, CqlDate)):
        return str(value)
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, str) and _DATE.match(value.lstrip("@")):
        return value.lstrip("@")
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, decimal.Decimal)):
        return str(_json_number(value))
    if isinstance(value, (CqlDate, CqlDateTime, CqlTime)):
        return str(value)
    if isinstance(value, Quantity):
        return f"{_json_number(value.value)} {value.unit}" if value.value is not None else None
    found = codings(value)
    if found:
        return found[0].get("display") or found[0].get("code")
    return None


def _quantity(value: Any) -> dict[str, Any] | None:
    if isinstance(value, Quantity):
        if value.value is None:
            return None
        out: dict[str, Any] = {"value": _json_number(value.value)}
        if value.unit and value.unit != "1":
            out.update(unit=value.unit, system=UCUM, code=value.unit)
        return out
    raw = value.json if isinstance(value, FhirNode) else value
    if isinstance(raw, Mapping) and "value" in raw and not raw.get("resourceType"):
        return {k: (_json_number(v) if k == "value" and isinstance(v, decimal.Decimal) else v) for k, v in raw.items()}
    n = _number(value)
    return None if n is None else {"value": _json_number(n)}


def _reference(value: Any) -> dict[str, Any] | None:
    raw = value.json if isinstance(value, FhirNode) else value
    if isinstance(raw, Mapping):
        if raw.get("resourceType") and raw.get("id"):
            return {"reference": f"{raw['resourceType']}/{raw['id']}"}
        if "reference" in raw or "identifier" in raw:
            return dict(raw)
    if isinstance(raw, str) and "/" in raw:
        return {"reference": raw}
    return None


# --- answer options --------------------------------------------------------------------------------------------------

def _vs_codings(vs: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def walk(contains: Iterable[Any]) -> None:
        for c in contains:
            if isinstance(c, Mapping):
                if c.get("code") is not None:
                    out.append({k: c[k] for k in ("system", "code", "display") if c.get(k) is not None})
                walk(c.get("contains") or [])

    walk((vs.get("expansion") or {}).get("contains") or [])
    if not out:
        for inc in (vs.get("compose") or {}).get("include") or []:
            for concept in inc.get("concept") or []:
                out.append({k: v for k, v in (("system", inc.get("system")), ("code", concept.get("code")),
                                              ("display", concept.get("display"))) if v is not None})
    return out


def answer_options(item: Mapping[str, Any], questionnaire: Mapping[str, Any],
                   valuesets: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The item's answerOption list, or its answerValueSet's codes as ``{"valueCoding": ...}`` options.

    A ``#id`` value set is looked up among the Questionnaire's contained resources, any other canonical among the
    package's ValueSets (``url`` or ``url|version``). An unknown or unexpanded value set gives no options.
    """
    if item.get("answerOption"):
        return [dict(o) for o in item["answerOption"] if isinstance(o, Mapping)]
    ref = item.get("answerValueSet")
    if not isinstance(ref, str):
        return []
    vs: Mapping[str, Any] | None = None
    if ref.startswith("#"):
        vs = next((c for c in questionnaire.get("contained") or []
                   if isinstance(c, Mapping) and c.get("resourceType") == "ValueSet" and c.get("id") == ref[1:]), None)
    else:
        vs = valuesets.get(ref) or valuesets.get(ref.split("|", 1)[0])
    return [{"valueCoding": c} for c in _vs_codings(vs)] if vs else []


def _match_coding(wanted: Sequence[Mapping[str, Any]], options: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    for coding in wanted:
        for opt in options:
            oc = opt.get("valueCoding")
            if isinstance(oc, Mapping) and oc.get("code") == coding.get("code") and (
                    not oc.get("system") or not coding.get("system") or oc.get("system") == coding.get("system")):
                return dict(oc)
    return None


def _match_text(text: str, options: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    folded = text.strip().casefold()
    for opt in options:
        oc = opt.get("valueCoding")
        if isinstance(oc, Mapping) and folded in {str(oc.get("code", "")).casefold(),
                                                  str(oc.get("display", "")).casefold()}:
            return {"valueCoding": dict(oc)}
        for key in ("valueString", "valueInteger", "valueDate", "valueTime"):
            if key in opt and str(opt[key]).casefold() == folded:
                return {key: opt[key]}
    return None


def _choice(value: Any, options: Sequence[Mapping[str, Any]], open_choice: bool) -> tuple[dict[str, Any], str | None]:
    found = codings(value)
    if found:
        matched = _match_coding(found, options)
        if matched is not None:
            return {"valueCoding": matched}, None
        return {"valueCoding": found[0]}, ("coding matches no answer option" if options else None)
    text = _text(value)
    if text is None:
        raise Unmappable(f"a {_kind(value)} result cannot answer a choice item")
    hit = _match_text(text, options)
    if hit is not None:
        return hit, None
    if open_choice:
        return {"valueString": text}, None
    return {"valueCoding": {"code": text}}, "text result matches no answer option"


# --- one value → one answer ------------------------------------------------------------------------------------------

def _one(value: Any, item_type: str, options: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], str | None]:
    kind = _kind(value)
    if item_type == "boolean":
        if isinstance(value, bool):
            return {"valueBoolean": value}, None
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return {"valueBoolean": value.lower() == "true"}, None
    elif item_type in ("decimal", "integer"):
        n = _number(value)
        if n is not None:
            if item_type == "decimal":
                return {"valueDecimal": _json_number(n)}, None
            rounded = int(decimal.Decimal(str(n)).to_integral_value(rounding=decimal.ROUND_HALF_UP))
            return {"valueInteger": rounded}, (None if rounded == n else "non-integer result rounded")
    elif item_type == "date":
        d = _date(value)
        if d is not None:
            return {"valueDate": d}, None
    elif item_type == "dateTime":
        d = _datetime(value)
        if d is not None:
            return {"valueDateTime": d}, None
    elif item_type == "time":
        if isinstance(value, CqlTime):
            return {"valueTime": str(value).lstrip("T")}, None
        if isinstance(value, str) and re.match(r"^\d{2}:\d{2}", value.lstrip("@T")):
            return {"valueTime": value.lstrip("@T")}, None
    elif item_type in _TEXT_TYPES:
        t = _text(value)
        if t is not None:
            return {_TEXT_TYPES[item_type]: t}, None
    elif item_type in ("choice", "open-choice"):
        return _choice(value, options, item_type == "open-choice")
    elif item_type == "quantity":
        q = _quantity(value)
        if q is not None:
            return {"valueQuantity": q}, None
    elif item_type == "reference":
        r = _reference(value)
        if r is not None:
            return {"valueReference": r}, None
    elif item_type == "attachment":
        raw = value.json if isinstance(value, FhirNode) else value
        if isinstance(raw, Mapping) and not raw.get("resourceType"):
            return {"valueAttachment": dict(raw)}, None
    else:
        raise Unmappable(f"a {item_type} item takes no answers")
    raise Unmappable(f"a {kind} result cannot answer a {item_type} item")


def to_answers(value: Any, item: Mapping[str, Any], options: Sequence[Mapping[str, Any]] = ()) -> Mapped:
    """Answers (without origin) for ``item`` from one expression result; raises :class:`Unmappable`."""
    values = _flatten(value)
    out = Mapped()
    if not values:
        return out
    item_type = str(item.get("type") or "string")
    if len(values) > 1 and not item.get("repeats"):
        out.warnings.append(f"{len(values)} results for a non-repeating item; the first is used")
        values = values[:1]
    for v in values:
        answer, warning = _one(v, item_type, options)
        if warning:
            out.warnings.append(warning)
        if answer not in out.answers:
            out.answers.append(answer)
    return out


def answer_value(answer: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The ``value[x]`` of an answer as (key, value), or None."""
    for key, val in answer.items():
        if key.startswith("value"):
            return key, val
    return None

"""Is a QuestionnaireResponse ready to be marked final? Checked against its Questionnaire (spec-142/143).

Only *enabled* items count (core ``enableWhen`` + ``enableBehavior`` are computed here; callers whose engine
evaluates ``enableWhenExpression`` pass their own answer as ``enabled``). Every problem is an
:class:`~fhir_pa.errors.Issue` whose path locates the item by linkId, which is unique in a Questionnaire:
``QuestionnaireResponse.item.where(linkId='3.1').answer``. Messages never quote answer values (they may be PHI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from fhir_pa.errors import Issue, ProfileError

Json = Mapping[str, Any]
Enabled = Callable[[str], bool]

#: Answer value[x] elements allowed for each item type (R4 Questionnaire.item.type).
ANSWER_TYPES: dict[str, frozenset[str]] = {
    "boolean": frozenset({"valueBoolean"}),
    "decimal": frozenset({"valueDecimal"}),
    "integer": frozenset({"valueInteger"}),
    "date": frozenset({"valueDate"}),
    "dateTime": frozenset({"valueDateTime"}),
    "time": frozenset({"valueTime"}),
    "string": frozenset({"valueString"}),
    "text": frozenset({"valueString"}),
    "url": frozenset({"valueUri"}),
    "choice": frozenset({"valueCoding", "valueString", "valueInteger", "valueDate", "valueTime", "valueReference"}),
    "open-choice": frozenset({"valueCoding", "valueString", "valueInteger", "valueDate", "valueTime",
                              "valueReference"}),
    "attachment": frozenset({"valueAttachment"}),
    "reference": frozenset({"valueReference"}),
    "quantity": frozenset({"valueQuantity"}),
}
NO_ANSWER_TYPES = frozenset({"group", "display"})
ORIGIN = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin"
USER_SOURCES = frozenset({"manual", "override"})


class IncompleteResponse(ProfileError):
    """The QuestionnaireResponse cannot be final yet; ``issues`` lists every item that stops it."""

    code = "incomplete"


def item_path(link_id: str, tail: str = "") -> str:
    return f"QuestionnaireResponse.item.where(linkId='{link_id}'){tail}"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _items(node: Any) -> list[Json]:
    return [i for i in _list(node.get("item") if isinstance(node, Mapping) else None) if isinstance(i, Mapping)]


def _value(answer: Json) -> tuple[str, Any] | None:
    for key, value in answer.items():
        if key.startswith("value"):
            return key, value
    return None


def questionnaire_items(questionnaire: Json) -> dict[str, Json]:
    """Every Questionnaire item by linkId (nested included)."""
    found: dict[str, Json] = {}

    def walk(node: Any) -> None:
        for item in _items(node):
            if isinstance(item.get("linkId"), str):
                found[item["linkId"]] = item
            walk(item)
    walk(questionnaire)
    return found


def _response_items(node: Any) -> Iterator[Json]:
    for item in _items(node):
        yield item
        yield from _response_items(item)
        for answer in _list(item.get("answer")):
            if isinstance(answer, Mapping):
                yield from _response_items(answer)


def answers_by_link_id(response: Json) -> dict[str, list[Json]]:
    """Every answer in the response, grouped by linkId (all repetitions of repeating groups together)."""
    found: dict[str, list[Json]] = {}
    for item in _response_items(response):
        link_id = item.get("linkId")
        if isinstance(link_id, str):
            found.setdefault(link_id, []).extend(a for a in _list(item.get("answer")) if isinstance(a, Mapping))
    return found


# --- enableWhen --------------------------------------------------------------------------------------


def _coding_equal(a: Any, b: Any) -> bool:
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return False
    if a.get("code") != b.get("code"):
        return False
    return not (a.get("system") and b.get("system") and a.get("system") != b.get("system"))


def _comparable(value: Any) -> Any:
    if isinstance(value, Mapping):  # Quantity
        return _comparable(value.get("value"))
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    return None


def _compare(operator: str, actual: tuple[str, Any], expected: tuple[str, Any]) -> bool:
    a_key, a_value = actual
    e_key, e_value = expected
    if e_key == "answerCoding":
        equal = a_key == "valueCoding" and _coding_equal(a_value, e_value)
        return equal if operator == "=" else (not equal if operator == "!=" else False)
    if a_key[len("value"):] != e_key[len("answer"):]:
        return operator == "!="
    left, right = _comparable(a_value), _comparable(e_value)
    if left is None or right is None:
        return False
    if operator == "=":
        return bool(left == right)
    if operator == "!=":
        return bool(left != right)
    if isinstance(left, bool) or isinstance(right, bool) or type(left) is not type(right):
        return False
    ordered = {">": left > right, "<": left < right, ">=": left >= right, "<=": left <= right}
    return bool(ordered.get(operator, False))


def _condition(condition: Json, answers: dict[str, list[Json]]) -> bool:
    question = condition.get("question")
    operator = str(condition.get("operator") or "")
    expected = next(((k, v) for k, v in condition.items() if k.startswith("answer")), None)
    given = answers.get(question, []) if isinstance(question, str) else []
    values = [v for v in (_value(a) for a in given) if v is not None]
    if operator == "exists":
        wanted = expected[1] if expected else True
        return bool(values) == bool(wanted)
    if expected is None:
        return False
    if operator == "!=":
        return all(_compare("!=", v, expected) for v in values)
    return any(_compare(operator, v, expected) for v in values)


def _enable_pass(node: Any, parent: bool, visible: dict[str, list[Json]], out: dict[str, bool]) -> None:
    for item in _items(node):
        link_id = item.get("linkId")
        conditions = [c for c in _list(item.get("enableWhen")) if isinstance(c, Mapping)]
        on = parent
        if on and conditions:
            results = [_condition(c, visible) for c in conditions]
            on = any(results) if item.get("enableBehavior") == "any" else all(results)
        if isinstance(link_id, str):
            out[link_id] = on
        _enable_pass(item, on, visible, out)


def compute_enabled(questionnaire: Json, response: Json) -> dict[str, bool]:
    """Enablement of every item from core ``enableWhen``/``enableBehavior``; a disabled parent disables all below.

    Answers of disabled items do not enable others (R4: they are treated as absent), so this iterates to a
    steady state; a Questionnaire that never settles keeps the last pass.
    """
    answers = answers_by_link_id(response)
    enabled: dict[str, bool] = {}
    for _ in range(10):
        visible = {k: v for k, v in answers.items() if enabled.get(k, True)}
        current: dict[str, bool] = {}
        _enable_pass(questionnaire, True, visible, current)
        if current == enabled:
            break
        enabled = current
    return enabled


# --- the checks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    items: dict[str, Json]
    enabled: Enabled
    draft: dict[str, list[Json]] | None
    valuesets: dict[str, list[Json]]


def _option_values(item: Json) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for option in _list(item.get("answerOption")):
        if isinstance(option, Mapping):
            value = _value(option)
            if value is not None:
                out.append(value)
    return out


def _valueset_codings(questionnaire: Json, valuesets: Sequence[Json]) -> dict[str, list[Json]]:
    """ValueSet codings by the reference an item would use (``#id`` for contained, url, url|version)."""
    found: dict[str, list[Json]] = {}

    def codings(vs: Json) -> list[Json]:
        expansion = vs.get("expansion")
        contains = _list(expansion.get("contains")) if isinstance(expansion, Mapping) else []
        out = [c for c in contains if isinstance(c, Mapping)]
        compose = vs.get("compose")
        for include in _list(compose.get("include")) if isinstance(compose, Mapping) else []:
            if isinstance(include, Mapping):
                out += [{"system": include.get("system"), **c} for c in _list(include.get("concept"))
                        if isinstance(c, Mapping)]
        return out
    for vs in _list(questionnaire.get("contained")):
        if isinstance(vs, Mapping) and vs.get("resourceType") == "ValueSet" and vs.get("id"):
            found[f"#{vs['id']}"] = codings(vs)
    for vs in valuesets:
        if isinstance(vs.get("url"), str):
            found[vs["url"]] = codings(vs)
            if vs.get("version"):
                found[f"{vs['url']}|{vs['version']}"] = codings(vs)
    return {k: v for k, v in found.items() if v}


def _source(answer: Json) -> str | None:
    for ext in _list(answer.get("extension")):
        if isinstance(ext, Mapping) and ext.get("url") == ORIGIN:
            for part in _list(ext.get("extension")):
                if isinstance(part, Mapping) and part.get("url") == "source":
                    code = part.get("valueCode")
                    return code if isinstance(code, str) else None
    return None


def _option_matches(key: str, raw: Any, option_key: str, option_value: Any) -> bool:
    if key != option_key:
        return False
    return _coding_equal(raw, option_value) if key == "valueCoding" else bool(raw == option_value)


def _check_answers(item: Json, link_id: str, answers: list[Json], ctx: _Context) -> list[Issue]:
    issues: list[Issue] = []
    kind = str(item.get("type") or "")
    where = item_path(link_id, ".answer")
    if kind in NO_ANSWER_TYPES:
        return [Issue(where, f"a {kind} item takes no answer", "answer-type")] if answers else []
    if len(answers) > 1 and not item.get("repeats"):
        issues.append(Issue(where, f"{len(answers)} answers to an item that does not repeat", "repeats"))
    allowed = ANSWER_TYPES.get(kind)
    options = _option_values(item)
    vs_ref = item.get("answerValueSet")
    vs_codings = ctx.valuesets.get(vs_ref, []) if isinstance(vs_ref, str) else []
    for n, answer in enumerate(answers):
        at = f"{where}[{n}]"
        value = _value(answer)
        if value is None:
            issues.append(Issue(at, "answer has no value", "answer-type"))
            continue
        key, raw = value
        if allowed is not None and key not in allowed:
            issues.append(Issue(at, f"{key} does not fit a {kind} item", "answer-type"))
            continue
        if options and kind in ("choice", "open-choice"):
            free_text = kind == "open-choice" and key == "valueString"
            if not free_text and not any(_option_matches(key, raw, ok, ov) for ok, ov in options):
                issues.append(Issue(at, "answer is not one of the item's answerOption values", "answerOption"))
        elif vs_codings and key == "valueCoding" and not any(_coding_equal(raw, c) for c in vs_codings):
            severity = "warning" if kind == "open-choice" else "error"
            issues.append(Issue(at, f"coding is not in the answerValueSet {vs_ref}", "answerValueSet", severity))
    if item.get("readOnly") and answers:
        if ctx.draft is not None:
            before = [_value(a) for a in ctx.draft.get(link_id, [])]
            if [_value(a) for a in answers] != before:
                issues.append(Issue(where, "a readOnly item's answer was changed", "readOnly"))
        elif any(_source(a) in USER_SOURCES for a in answers):
            issues.append(Issue(where, "a readOnly item carries a user-entered answer", "readOnly"))
    return issues


def _walk(node: Json, ctx: _Context, issues: list[Issue], seen: set[str]) -> None:
    counts: dict[str, int] = {}
    for child in _items(node):
        link_id = child.get("linkId")
        if not isinstance(link_id, str):
            issues.append(Issue("QuestionnaireResponse.item", "an item has no linkId", "linkId"))
            continue
        counts[link_id] = counts.get(link_id, 0) + 1
        seen.add(link_id)
        item = ctx.items.get(link_id)
        if item is None:
            issues.append(Issue(item_path(link_id), "linkId is not in the Questionnaire", "linkId"))
            continue
        answers = [a for a in _list(child.get("answer")) if isinstance(a, Mapping)]
        if not ctx.enabled(link_id):
            if answers or _items(child):
                issues.append(Issue(item_path(link_id), "item is disabled (enableWhen) but answered",
                                    "enableWhen"))
            continue
        issues += _check_answers(item, link_id, answers, ctx)
        if item.get("required") and str(item.get("type")) not in NO_ANSWER_TYPES and not answers:
            issues.append(Issue(item_path(link_id, ".answer"), "required item is not answered", "required"))
        _walk(child, ctx, issues, seen)
        for answer in answers:
            _walk(answer, ctx, issues, seen)
    for link_id, count in counts.items():
        item = ctx.items.get(link_id)
        if item is not None and count > 1 and not item.get("repeats"):
            issues.append(Issue(item_path(link_id), f"item appears {count} times but does not repeat", "repeats"))


def _has_answer(node: Json) -> bool:
    return any(_list(i.get("answer")) for i in _response_items(node))


def _missing_required(questionnaire: Json, response: Json, ctx: _Context, seen: set[str]) -> list[Issue]:
    """Required enabled items (and required groups) absent from the response altogether."""
    present = {i.get("linkId"): i for i in _response_items(response)}
    issues: list[Issue] = []

    def walk(node: Any) -> None:
        for item in _items(node):
            link_id = item.get("linkId")
            if not isinstance(link_id, str) or not ctx.enabled(link_id):
                continue
            kind = str(item.get("type") or "")
            if item.get("required") and link_id not in seen and kind != "display":
                tail = "" if kind == "group" else ".answer"
                issues.append(Issue(item_path(link_id, tail), "required item is not answered", "required"))
            elif item.get("required") and kind == "group" and link_id in present \
                    and not _has_answer(present[link_id]):
                issues.append(Issue(item_path(link_id), "required group has no answer", "required"))
            walk(item)
    walk(questionnaire)
    return issues


def completion_issues(response: Json, questionnaire: Json, *, enabled: Enabled | None = None,
                      draft: Json | None = None, valuesets: Sequence[Json] = ()) -> list[Issue]:
    """Every reason ``response`` is not a complete, valid answer to ``questionnaire``.

    ``enabled(linkId)`` overrides the built-in enableWhen evaluation; ``draft`` (the response as prepopulated)
    lets readOnly items be compared; ``valuesets`` (from the package) let answerValueSet bindings be checked.
    """
    items = questionnaire_items(questionnaire)
    if enabled is None:
        computed = compute_enabled(questionnaire, response)
        enabled = lambda link_id: computed.get(link_id, True)  # noqa: E731
    ctx = _Context(items, enabled, answers_by_link_id(draft) if draft is not None else None,
                   _valueset_codings(questionnaire, valuesets))
    issues: list[Issue] = []
    seen: set[str] = set()
    _walk(response, ctx, issues, seen)
    issues += _missing_required(questionnaire, response, ctx, seen)
    return issues


def ensure_complete(response: Json, questionnaire: Json, *, enabled: Enabled | None = None,
                    draft: Json | None = None, valuesets: Sequence[Json] = ()) -> None:
    """Raise :class:`IncompleteResponse` listing every error-level issue; warnings do not block."""
    errors = [i for i in completion_issues(response, questionnaire, enabled=enabled, draft=draft,
                                           valuesets=valuesets) if i.severity == "error"]
    if errors:
        raise IncompleteResponse(errors)


__all__ = [
    "ANSWER_TYPES",
    "IncompleteResponse",
    "answers_by_link_id",
    "completion_issues",
    "compute_enabled",
    "ensure_complete",
    "item_path",
    "questionnaire_items",
]

"""A person's answers on a populated QuestionnaireResponse: put them where the Questionnaire says, with the right
origin.

Population leaves out items it could not fill, so answering one may mean creating it, and its enclosing groups,
in the Questionnaire's order. An answer replacing an automatic one is an ``override``; otherwise it is ``manual``;
both carry the author (dtrx-1, spec-137).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from fhir_pa.dtr.origin import AUTO, DtrVersion, Source, read_source, with_origin
from fhir_pa.errors import InputError

Json = dict[str, Any]


def _path(items: Sequence[Mapping[str, Any]], link_id: str) -> list[Mapping[str, Any]] | None:
    """The Questionnaire items from the top down to ``link_id``."""
    for item in items:
        if item.get("linkId") == link_id:
            return [item]
        below = _path(item.get("item") or [], link_id)
        if below is not None:
            return [item, *below]
    return None


def _order(siblings: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    return {str(item.get("linkId")): position for position, item in enumerate(siblings)}


def _child(holder: Json, definition: Mapping[str, Any], siblings: Sequence[Mapping[str, Any]]) -> Json:
    """``holder``'s response item for ``definition``, created in Questionnaire order when absent."""
    link_id = definition["linkId"]
    items: list[Json] = holder.setdefault("item", [])
    for item in items:
        if item.get("linkId") == link_id:
            return item
    created: Json = {"linkId": link_id}
    if definition.get("text"):
        created["text"] = definition["text"]
    rank = _order(siblings)
    position = next((n for n, item in enumerate(items) if rank.get(str(item.get("linkId")), 1 << 30) > rank[link_id]),
                    len(items))
    items.insert(position, created)
    return created


def set_answers(response: Mapping[str, Any], questionnaire: Mapping[str, Any], link_id: str,
                values: Sequence[Mapping[str, Any]], *, author: str, version: DtrVersion = "2.2") -> Json:
    """A copy of ``response`` where ``link_id`` holds ``values`` (each ``{"valueX": ...}``), answered by ``author``.

    An empty ``values`` clears the item's answers. :class:`InputError` when the Questionnaire has no such item or
    it is a group or display item.
    """
    path = _path(questionnaire.get("item") or [], link_id)
    where = f"Questionnaire.item.where(linkId='{link_id}')"
    if path is None:
        raise InputError(f"the Questionnaire has no item {link_id!r}", path=where)
    if path[-1].get("type") in ("group", "display"):
        raise InputError(f"item {link_id!r} is a {path[-1].get('type')} and takes no answers", path=where)
    out: Json = copy.deepcopy(dict(response))
    holder, siblings = out, questionnaire.get("item") or []
    for definition in path:
        holder = _child(holder, definition, siblings)
        siblings = definition.get("item") or []
    previous = holder.get("answer") or []
    was_auto = any(read_source(answer) in AUTO for answer in previous if isinstance(answer, Mapping))
    source: Source = "override" if was_auto else "manual"
    if values:
        holder["answer"] = [with_origin(dict(value), source, author=author, version=version) for value in values]
    else:
        holder.pop("answer", None)
    return out


__all__ = ["set_answers"]

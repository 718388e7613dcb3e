"""Read a CDS Hooks response from a CRD service into typed cards and actions, leniently.

Only a body that is not a JSON object, or has no ``cards`` list, raises :class:`~fhir_pa.errors.InvalidResponse`
(CDS Hooks makes ``cards`` required, possibly empty). Anything odd inside (an unknown indicator, a missing
``selectionBehavior``, an old delete shape) becomes a warning naming its JSON path, and is read the obvious way:
a payer's real answer must not be lost to one malformed card. Unexpected elements are ignored (found-33).

Action resources are deep copies of the payer's JSON, so nothing done to a parsed response changes the input.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fhir_pa.crd.coverage_info import CoverageInformation, read_coverage_information
from fhir_pa.errors import InvalidResponse
from fhir_pa.fhir.document import kind, load_document
from fhir_pa.pas.decision_fields import FieldReader, Json
from fhir_pa.pas.decision_types import Coding

#: Card topic systems: CRD 2.2 uses the HL7 terminology one; CRD ≤2.1, Inferno and the RI the CRD temp one.
CARD_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/cdshooks-card-type"
CARD_TYPE_SYSTEM_OLD = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
CARD_TYPE_SYSTEMS = (CARD_TYPE_SYSTEM, CARD_TYPE_SYSTEM_OLD)
EXT_ASSOCIATED_RESOURCE = "davinci-crd.associated-resource"
EXT_IF_NONE_EXIST = "davinci-crd.if-none-exist"
ACTION_TYPES = ("create", "update", "delete")
SELECTION_BEHAVIORS = ("at-most-one", "any")
LINK_TYPES = ("absolute", "smart")


class Indicator(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Source:
    label: str | None
    url: str | None
    icon: str | None
    topic: Coding | None

    @property
    def card_type(self) -> str | None:
        """The CRD card type (``coverage-info``, ``guideline``...) when the topic uses a card-type system (or none)."""
        if self.topic is not None and (self.topic.system is None or self.topic.system in CARD_TYPE_SYSTEMS):
            return self.topic.code
        return None


@dataclass(frozen=True)
class Link:
    label: str | None
    url: str | None
    type: str | None  # absolute | smart
    app_context: str | None

    @property
    def smart_launch(self) -> bool:
        """A SMART app launch link (the client must launch it with ``appContext``), not a page to open."""
        return self.type == "smart"


@dataclass(frozen=True)
class Action:
    """One suggested change. ``resource_id`` is "Type/id": ``resourceId`` or an old delete's ``resource``."""

    path: str  # JSON path in the response, e.g. "$.systemActions[0]"
    type: str | None
    description: str | None
    resource: Mapping[str, Any] | None = field(default=None, hash=False)
    resource_id: str | None = None
    if_none_exist: str | None = None  # davinci-crd.if-none-exist: a conditional create
    coverage_information: tuple[CoverageInformation, ...] = ()

    @property
    def resource_type(self) -> str | None:
        if self.resource is not None and isinstance(self.resource.get("resourceType"), str):
            return str(self.resource["resourceType"])
        return self.resource_id.split("/", 1)[0] if self.resource_id and "/" in self.resource_id else None

    @property
    def target(self) -> str | None:
        """"Type/id" of the resource the action is about (``resourceId`` for a delete)."""
        if self.resource_id:
            return self.resource_id
        if self.resource is None:
            return None
        rtype, rid = self.resource.get("resourceType"), self.resource.get("id")
        return f"{rtype}/{rid}" if isinstance(rtype, str) and isinstance(rid, str) else None

    @property
    def system_action(self) -> bool:
        return self.path.startswith("$.systemActions")


@dataclass(frozen=True)
class Suggestion:
    label: str | None
    uuid: str | None
    is_recommended: bool | None
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class Card:
    path: str
    uuid: str | None
    summary: str | None
    detail: str | None
    indicator: Indicator
    indicator_raw: str | None  # as sent; differs from ``indicator`` only when it was unknown
    source: Source
    suggestions: tuple[Suggestion, ...]
    selection_behavior: str | None
    override_reasons: tuple[Coding, ...]
    links: tuple[Link, ...]
    associated_resources: tuple[str, ...]  # davinci-crd.associated-resource references

    @property
    def card_type(self) -> str | None:
        return self.source.card_type


@dataclass(frozen=True)
class HookResponse:
    cards: tuple[Card, ...]
    system_actions: tuple[Action, ...]
    warnings: tuple[str, ...]
    source: str = "CDS Hooks response"

    def actions(self) -> tuple[Action, ...]:
        """Every action: system actions first, then each card's suggestions in order."""
        return self.system_actions + tuple(a for c in self.cards for s in c.suggestions for a in s.actions)


def load_json(data: bytes | str | Mapping[str, Any], source: str) -> Json:
    """The JSON object in ``data``; InvalidResponse saying why not."""
    return dict(load_document(data, source, expected="a CDS Hooks response object"))


class _CardReader:
    def __init__(self, reader: FieldReader) -> None:
        self.r = reader

    def coding(self, node: Json, key: str, where: str) -> Coding | None:
        value = self.r.obj(node, key, where)
        if value is None:
            return None
        path = f"{where}.{key}"
        return Coding(self.r.string(value, "system", path), self.r.string(value, "code", path),
                      self.r.string(value, "display", path))

    def source(self, card: Json, where: str) -> Source:
        node = self.r.obj(card, "source", where)
        if node is None:
            self.r.warn(f"{where}.source is missing (CDS Hooks requires it)")
            return Source(None, None, None, None)
        path = f"{where}.source"
        if not self.r.string(node, "label", path):
            self.r.warn(f"{path}.label is missing (CDS Hooks requires it)")
        source = Source(self.r.string(node, "label", path), self.r.string(node, "url", path),
                        self.r.string(node, "icon", path), self.coding(node, "topic", path))
        if source.topic is not None and source.topic.system is None:
            self.r.warn(f"{path}.topic has no system; its code is read as a CRD card type")
        elif source.topic is not None and source.topic.system not in CARD_TYPE_SYSTEMS:
            self.r.warn(f"{path}.topic uses system {source.topic.system!r}, not a CRD card-type system")
        return source

    def link(self, node: Json, path: str) -> Link:
        link = Link(self.r.string(node, "label", path), self.r.string(node, "url", path),
                    self.r.string(node, "type", path), self.r.string(node, "appContext", path))
        if link.type not in LINK_TYPES:
            self.r.warn(f"{path}.type {link.type!r} is not 'absolute' or 'smart'")
        if not link.url:
            self.r.warn(f"{path}.url is missing")
        return link

    def action(self, node: Json, path: str) -> Action:
        action_type = self.r.string(node, "type", path)
        if action_type not in ACTION_TYPES:
            self.r.warn(f"{path}.type {action_type!r} is not create, update or delete")
        raw_resource = node.get("resource")
        resource: Json | None = None
        resource_id = self.resource_id(node, path)
        if isinstance(raw_resource, str):  # old delete shape: "Type/id"
            self.r.warn(f"{path}.resource is a string (pre-2.0 delete); read as resourceId")
            resource_id = resource_id or raw_resource
        elif isinstance(raw_resource, Mapping):
            if action_type == "delete":  # old delete shape: {resourceType, id}
                rtype, rid = raw_resource.get("resourceType"), raw_resource.get("id")
                if not resource_id and isinstance(rtype, str) and isinstance(rid, str):
                    self.r.warn(f"{path}.resource on a delete is the pre-2.0 shape; read as resourceId")
                    resource_id = f"{rtype}/{rid}"
            else:
                resource = copy.deepcopy(dict(raw_resource))
        elif raw_resource is not None:
            self.r.wrong(f"{path}.resource", raw_resource, "an object")
        if action_type in ("create", "update") and resource is None:
            self.r.warn(f"{path}: {action_type} action without a resource")
        if action_type == "delete" and not resource_id:
            self.r.warn(f"{path} is a delete without resourceId")
        if action_type == "create" and resource is not None and resource.get("resourceType") == "Coverage":
            self.r.warn(f"{path} creates a Coverage, which CRD 2.2 forbids; never apply it")
        extension = self.r.obj(node, "extension", path)
        if_none_exist = self.r.string(extension, EXT_IF_NONE_EXIST, f"{path}.extension") if extension else None
        info: tuple[CoverageInformation, ...] = ()
        if resource is not None:
            info = read_coverage_information(resource, f"{path}.resource", self.r)
        return Action(path, action_type, self.r.string(node, "description", path), resource, resource_id,
                      if_none_exist, info)

    def resource_id(self, node: Json, path: str) -> str | None:
        value = node.get("resourceId")
        if isinstance(value, list):  # some drafts allow several
            ids = [v for v in value if isinstance(v, str)]
            if len(ids) > 1:
                self.r.warn(f"{path}.resourceId lists {len(ids)} ids; the first is used")
            return ids[0] if ids else None
        rid = self.r.string(node, "resourceId", path)
        if rid and "/" not in rid:
            self.r.warn(f"{path}.resourceId is not a relative reference (Type/id)")
        return rid

    def suggestion(self, node: Json, path: str) -> Suggestion:
        flag = node.get("isRecommended")
        if flag is not None and not isinstance(flag, bool):
            self.r.wrong(f"{path}.isRecommended", flag, "a boolean")
            flag = None
        if not self.r.string(node, "uuid", path):
            self.r.warn(f"{path}.uuid is missing (CRD resp-3)")
        return Suggestion(self.r.string(node, "label", path), self.r.string(node, "uuid", path), flag,
                          tuple(self.action(a, p) for p, a in self.r.objects(node, "actions", path)))

    def indicator(self, card: Json, where: str) -> tuple[Indicator, str | None]:
        raw = self.r.string(card, "indicator", where)
        try:
            return Indicator(raw or ""), raw
        except ValueError:
            what = f"{raw!r} is not info, warning or critical" if raw else "is missing"
            self.r.warn(f"{where}.indicator {what}; read as warning")
            return Indicator.WARNING, raw

    def associated(self, card: Json, where: str) -> tuple[str, ...]:
        extension = self.r.obj(card, "extension", where)
        if extension is None:
            return ()
        refs = (self.r.string(ref, "reference", path)
                for path, ref in self.r.objects(extension, EXT_ASSOCIATED_RESOURCE, f"{where}.extension"))
        return tuple(r for r in refs if r)

    def card(self, card: Json, where: str) -> Card:
        r = self.r
        for key in ("uuid", "summary"):
            if not r.string(card, key, where):
                r.warn(f"{where}.{key} is missing")
        indicator, raw = self.indicator(card, where)
        suggestions = tuple(self.suggestion(s, p) for p, s in r.objects(card, "suggestions", where))
        behavior = r.string(card, "selectionBehavior", where)
        if suggestions and behavior is None:
            r.warn(f"{where}.selectionBehavior is missing; it is required with suggestions")
        elif behavior is not None and behavior not in SELECTION_BEHAVIORS:
            r.warn(f"{where}.selectionBehavior {behavior!r} is unknown; offer one suggestion at most")
        override = tuple(c for p, o in r.objects(card, "overrideReasons", where)
                         for c in [Coding(r.string(o, "system", p), r.string(o, "code", p), r.string(o, "display", p))])
        return Card(
            path=where,
            uuid=r.string(card, "uuid", where),
            summary=r.string(card, "summary", where),
            detail=r.string(card, "detail", where),
            indicator=indicator,
            indicator_raw=raw,
            source=self.source(card, where),
            suggestions=suggestions,
            selection_behavior=behavior,
            override_reasons=override,
            links=tuple(self.link(n, p) for p, n in r.objects(card, "links", where)),
            associated_resources=self.associated(card, where),
        )


def parse_hook_response(data: bytes | str | Mapping[str, Any], *, source: str = "CDS Hooks response") -> HookResponse:
    """The cards and system actions of a CDS Hooks response; InvalidResponse if it is not one at all.

    ``source`` names the input in messages (a file name, "order-sign response from <payer>").
    """
    document = load_json(data, source)
    cards = document.get("cards")
    if cards is None:
        raise InvalidResponse(f"{source} has no 'cards' (required in a CDS Hooks response)", path="$.cards")
    if not isinstance(cards, list):
        raise InvalidResponse(f"{source} 'cards' is {kind(cards)}, not a list", path="$.cards")
    reader = FieldReader()
    cards_reader = _CardReader(reader)
    parsed_cards = tuple(cards_reader.card(c, p) for p, c in reader.objects(document, "cards", "$"))
    actions = tuple(cards_reader.action(a, p) for p, a in reader.objects(document, "systemActions", "$"))
    return HookResponse(parsed_cards, actions, reader.warnings, source)


__all__ = [
    "CARD_TYPE_SYSTEMS",
    "Action",
    "Card",
    "HookResponse",
    "Indicator",
    "Link",
    "Source",
    "Suggestion",
    "load_json",
    "parse_hook_response",
]

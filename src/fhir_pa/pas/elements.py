"""Evaluate element constraints (cardinality and patterns, by ElementDefinition id) on a resource as JSON.

Works on plain dicts so it can judge what we are about to send and what a payer sent alike, and reports
each problem with a FHIRPath-style location (``Claim.item[1].extension``) the user can find.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from fhir_pa.errors import Issue
from fhir_pa.pas.profiles import ElementRule, Profile

_CHOICE = re.compile(r"^(?P<name>[a-zA-Z]+)\[x\]$")


def matches_pattern(value: Any, pattern: Any) -> bool:
    """FHIR pattern semantics: every element of the pattern is present in the value (lists: some match)."""
    if isinstance(pattern, Mapping):
        return isinstance(value, Mapping) and all(
            key in value and matches_pattern(value[key], sub) for key, sub in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and all(any(matches_pattern(v, p) for v in value) for p in pattern)
    return bool(value == pattern)


def _children(node: Mapping[str, Any], name: str) -> Iterator[tuple[str, Any]]:
    """Values of element ``name`` in ``node`` (choice types expanded), with their key."""
    choice = _CHOICE.match(name)
    if choice:
        stem = choice.group("name")
        for key, value in node.items():
            if key.startswith(stem) and key[len(stem):][:1].isupper():
                yield key, value
        return
    if name in node:
        yield name, node[name]


class _Walker:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def _in_slice(self, slice_id: str, value: Any) -> bool:
        rule = self.profile.slices.get(slice_id)
        if rule is None:
            return True  # an unknown slice is not narrowed: better a broader check than none
        if "url" in rule:
            return isinstance(value, Mapping) and value.get("url") == rule["url"]
        return matches_pattern(value, rule.get("pattern", {}))

    def select(self, nodes: list[tuple[str, Any]], segment: str, prefix: str) -> list[tuple[str, Any]]:
        """Step from ``nodes`` (path, value) into ``segment`` (``name`` or ``name:slice``)."""
        name, _, slice_name = segment.partition(":")
        slice_id = f"{prefix}.{segment}"
        out: list[tuple[str, Any]] = []
        for path, node in nodes:
            if not isinstance(node, Mapping):
                continue
            for key, value in _children(node, name):
                items = value if isinstance(value, list) else [value]
                for index, item in enumerate(items):
                    if slice_name and not self._in_slice(slice_id, item):
                        continue
                    where = f"{path}.{key}[{index}]" if isinstance(value, list) else f"{path}.{key}"
                    out.append((where, item))
        return out


def check_elements(resource: Mapping[str, Any], profile: Profile, *, location: str) -> list[Issue]:
    """Check ``resource`` against every element rule of ``profile``; ``location`` prefixes the paths."""
    walker = _Walker(profile)
    issues: list[Issue] = []
    for rule in profile.elements:
        issues.extend(_check_rule(resource, rule, walker, location))
    return issues


def _check_rule(resource: Mapping[str, Any], rule: ElementRule, walker: _Walker, location: str) -> list[Issue]:
    segments = rule.id.split(".")[1:]
    parents: list[tuple[str, Any]] = [(location, resource)]
    prefix = rule.id.split(".")[0]
    for segment in segments[:-1]:
        parents = walker.select(parents, segment, prefix)
        prefix = f"{prefix}.{segment}"
    last = segments[-1]
    tag = f"{walker.profile.name}:{rule.id}"
    issues: list[Issue] = []
    for parent_path, parent in parents:
        found = walker.select([(parent_path, parent)], last, prefix)
        name = last.partition(":")[0]
        if len(found) < rule.min:
            what = f"slice {last}" if ":" in last else name
            issues.append(Issue(f"{parent_path}.{name}", f"{what} is required (min {rule.min}, found "
                                f"{len(found)})", tag))
        if rule.max != "*" and len(found) > int(rule.max):
            issues.append(Issue(f"{parent_path}.{name}", f"{last} allows at most {rule.max}, found {len(found)}",
                                tag))
        if rule.pattern is not None:
            kind, expected = rule.pattern
            for path, value in found:
                ok = matches_pattern(value, expected) if kind.startswith("pattern") else value == expected
                if not ok:
                    issues.append(Issue(path, f"must be {expected!r} ({kind})", tag))
    return issues

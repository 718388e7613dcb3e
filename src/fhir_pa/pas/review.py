"""The PAS review action (X12 278 HCR segment): where payers put it, and what its code means.

PAS 2.2.1 puts ``extension-reviewAction`` on ``adjudication`` (of an item, an addItem, or the whole
ClaimResponse), with the code in a sub-extension named by the **full canonical URL**
``.../extension-reviewActionCode`` (pas.md §6.1) and ``number`` / ``reasonCode`` as relative sub-extensions.
Other shapes seen in the wild are read too, each with a warning:

- the relative sub-extension names ``reviewActionCode`` and ``code`` (the slice name);
- 2.0.1: ``extension-reviewActionCode`` straight on the adjudication;
- the reference implementation: ``extension-reviewAction`` on the item itself (or the ClaimResponse),
  sometimes with a bare ``valueString`` code.

Codes are matched by value whatever the system: the IG uses ``https://codesystem.x12.org/005010/306``, the
reference implementation a ValueSet URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fhir_pa.pas import codes
from fhir_pa.pas.decision_fields import FieldReader, Json
from fhir_pa.pas.decision_types import Coding, ItemStatus

REVIEW_ACTION = codes.EXT_REVIEW_ACTION
REVIEW_ACTION_CODE = codes.EXT_REVIEW_ACTION_CODE
_RELATIVE_CODE_URLS = ("reviewActionCode", "code")

#: X12 306 (HCR01) codes → item status. Only A1/A3/A4/A6 appear in PAS or Inferno artifacts.
X12_306: Mapping[str, ItemStatus] = {
    "A1": ItemStatus.APPROVED,
    "A2": ItemStatus.PARTIAL,
    "A3": ItemStatus.DENIED,
    "A4": ItemStatus.PENDED,
    "A6": ItemStatus.MODIFIED,
    "C": ItemStatus.CANCELLED,
    "CT": ItemStatus.CONTACT_PAYER,
    "NA": ItemStatus.NO_ACTION,
}


@dataclass(frozen=True)
class ReviewAction:
    """One reviewAction as found: its code (normalised), HCR02 number and HCR03 reasons."""

    code: str | None
    display: str | None
    number: str | None
    reasons: tuple[Coding, ...]
    path: str

    @property
    def status(self) -> ItemStatus:
        return item_status(self.code)


def item_status(code: str | None) -> ItemStatus:
    return X12_306.get(code or "", ItemStatus.UNKNOWN)


def _normalise(code: str | None) -> str | None:
    if code is None:
        return None
    return code.strip().upper() or None


def _code_of(reader: FieldReader, ext: Json, path: str) -> tuple[str | None, str | None]:
    """(code, display) of an extension carrying a review action code, in any value type payers use."""
    if "valueCodeableConcept" in ext:
        concept = reader.obj(ext, "valueCodeableConcept", path)
        codings = reader.codings(concept, f"{path}.valueCodeableConcept") if concept else ()
        known = next((c for c in codings if _normalise(c.code) in X12_306), None)
        chosen = known or next((c for c in codings if c.code), None)
        if chosen is not None:
            return _normalise(chosen.code), chosen.display
        return None, None
    if "valueCoding" in ext:
        coding = reader.obj(ext, "valueCoding", path)
        if coding is None:
            return None, None
        where = f"{path}.valueCoding"
        return _normalise(reader.string(coding, "code", where)), reader.string(coding, "display", where)
    for key in ("valueCode", "valueString"):
        if key in ext:
            reader.warn(f"{path} carries the review action code as {key}, not valueCodeableConcept")
            return _normalise(reader.string(ext, key, path)), None
    return None, None


def _from_review_extension(reader: FieldReader, ext: Json, path: str) -> ReviewAction | None:
    """An ``extension-reviewAction``: sub-extensions (2.x), or a bare value (reference implementation)."""
    parts = reader.objects(ext, "extension", path)
    if not parts:
        code, display = _code_of(reader, ext, path)
        if code is None:
            reader.warn(f"{path} is a reviewAction without a code")
            return None
        reader.warn(f"{path} carries its code as a value, not in a reviewActionCode sub-extension")
        return ReviewAction(code, display, None, (), path)
    code = display = number = None
    reasons: list[Coding] = []
    for part_path, part in parts:
        url = part.get("url")
        if url == REVIEW_ACTION_CODE or url in _RELATIVE_CODE_URLS:
            if url != REVIEW_ACTION_CODE:
                reader.warn(f"{part_path} names the review action code {url!r}; PAS 2.2 uses the full URL "
                            f"{REVIEW_ACTION_CODE}")
            if code is None:
                code, display = _code_of(reader, part, part_path)
        elif url == "number":
            number = number or reader.string(part, "valueString", part_path)
        elif url == "reasonCode":
            concept = reader.obj(part, "valueCodeableConcept", part_path)
            reason = reader.primary(concept, f"{part_path}.valueCodeableConcept") if concept else None
            if reason is not None:
                reasons.append(reason)
    if code is None:
        reader.warn(f"{path} is a reviewAction without a reviewActionCode")
    return ReviewAction(code, display, number, tuple(reasons), path)


def review_on(reader: FieldReader, holder: Json, where: str) -> list[ReviewAction]:
    """Review actions written directly in ``holder.extension`` (an adjudication, or an RI-style item)."""
    found: list[ReviewAction] = []
    for path, ext in reader.extensions(holder, where, REVIEW_ACTION):
        action = _from_review_extension(reader, ext, path)
        if action is not None:
            found.append(action)
    for path, ext in reader.extensions(holder, where, REVIEW_ACTION_CODE):  # 2.0.1: the code on its own
        code, display = _code_of(reader, ext, path)
        if code is not None:
            found.append(ReviewAction(code, display, None, (), path))
    return found


def _submitted(reader: FieldReader, adjudication: Json, path: str) -> bool:
    return any(c.code == "submitted" for c in reader.concept(adjudication, "category", path))


def read_review(reader: FieldReader, node: Json, where: str, *, direct: bool = False) -> ReviewAction | None:
    """The review action of ``node`` (an item, an addItem or the ClaimResponse), from its adjudications.

    ``direct`` also looks at ``node.extension`` (the reference implementation's shape). When there are
    several, the first on a ``submitted`` adjudication wins, and a warning says so if they disagree.
    """
    found: list[tuple[bool, ReviewAction]] = []
    for path, adjudication in reader.objects(node, "adjudication", where):
        submitted = _submitted(reader, adjudication, path)
        found.extend((submitted, action) for action in review_on(reader, adjudication, path))
    if direct:
        on_node = review_on(reader, node, where)
        for action in on_node:
            reader.warn(f"{action.path}: reviewAction sits on {where}, not on its adjudication")
        found.extend((False, action) for action in on_node)
    if not found:
        return None
    found.sort(key=lambda pair: not pair[0])  # stable: submitted adjudications first
    chosen = found[0][1]
    others = {action.code for _, action in found[1:] if action.code and action.code != chosen.code}
    if others:
        reader.warn(f"{where} has several review actions ({', '.join(sorted({chosen.code or '?', *others}))}); "
                    f"used {chosen.code} from {chosen.path}")
    return chosen

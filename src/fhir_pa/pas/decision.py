"""Read any PAS response into a typed :class:`PasDecision`, leniently.

Input: the payer's bytes (or text, or an already-parsed dict) holding a PAS response Bundle, a ``$inquire``
Parameters, a subscription notification, or a bare ClaimResponse (``decision_locate``). The ClaimResponse is
read from raw JSON, never through strict FHIR models: real payloads break them, and a decision the payer
did send must not be lost to a validation error elsewhere. Odd shapes become ``warnings``; only input with
no decision in it at all raises :class:`~fhir_pa.errors.InvalidResponse`.

Items are matched by ``itemSequence``. Each item's decision is its review action (``review``): X12 306 code,
``number`` (the auth number, else the item's authorizationNumber extension) and reasons. An addItem whose
``itemSequence`` names a requested item is what was authorized instead of it; any other addItem is a new
authorized item (``added_items``).

Overall status (``decision_status``), first match wins:

- ``outcome = error`` or any ``error[]``                    → error
- any item A4                                               → pended
- no items: the ClaimResponse-level review action; none     → unknown
- any item CT or without a readable X12 306 code            → unknown
- ignoring C and NA items: all A1 → approved; A6 alone or with A1 → modified; all A3 → denied; any other
  mix of A1/A2/A3/A6 (A2 alone too) → partial; only C (and NA) left → cancelled; only NA → unknown

``outcome`` never makes a request pended (2.0.1 ``queued`` only adds a warning).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir_pa.fhir.document import load_document
from fhir_pa.pas import codes
from fhir_pa.pas.decision_fields import FieldReader, Json
from fhir_pa.pas.decision_json import decision_as_json
from fhir_pa.pas.decision_locate import Located, locate_claim_response
from fhir_pa.pas.decision_status import overall_status
from fhir_pa.pas.decision_types import (
    AuthorizedItem,
    Coding,
    DecisionStatus,
    InformationRequest,
    ItemDecision,
    ItemStatus,
    PasDecision,
    Period,
    ProcessingError,
    Quantity,
)
from fhir_pa.pas.references import BundleIndex
from fhir_pa.pas.review import X12_306, read_review

EXT_AUTHORIZATION_NUMBER = codes.extension("authorizationNumber")
EXT_ADMINISTRATION_REFERENCE = codes.extension("administrationReferenceNumber")
EXT_PREAUTH_PERIOD = codes.extension("itemPreAuthPeriod")
EXT_PREAUTH_ISSUE_DATE = codes.extension("itemPreAuthIssueDate")
EXT_ERROR_PATH = codes.extension("errorPath")
EXT_ERROR_ELEMENT = codes.extension("errorElement")
EXT_ERROR_FOLLOWUP = codes.extension("errorFollowupAction")
EXT_SERVICE_LINE = codes.extension("serviceLineNumber")
EXT_CONTENT_MODIFIER = codes.extension("contentModifier")

#: ClaimResponse.outcome values PAS 2.2 allows; ``queued`` is the 2.0.1 pend signal, read with a warning.
OUTCOMES = ("complete", "error", "partial")

CR = "ClaimResponse"


class _ClaimResponseReader:
    """Reads one located ClaimResponse; every oddity goes to ``reader.warnings``."""

    def __init__(self, located: Located, reader: FieldReader) -> None:
        self.located = located
        self.response = located.claim_response
        self.reader = reader
        self.process_notes = self._process_notes()

    # -- shared pieces ----------------------------------------------------------------------------

    def _process_notes(self) -> dict[int, str]:
        notes: dict[int, str] = {}
        for path, note in self.reader.objects(self.response, "processNote", CR):
            number = self.reader.integer(note, "number", path)
            text = self.reader.string(note, "text", path)
            if number is not None and text:
                notes.setdefault(number, text)
        return notes

    def note(self, number: int | None, path: str) -> str | None:
        if number is None:
            return None
        text = self.process_notes.get(number)
        if text is None:
            self.reader.warn(f"{path} names processNote {number}, which is not in the ClaimResponse")
        return text

    def notes_of(self, node: Json, path: str) -> tuple[str, ...]:
        texts = (self.note(n, f"{path}.noteNumber") for n in self.reader.integers(node, "noteNumber", path))
        return tuple(t for t in texts if t)

    # -- items ------------------------------------------------------------------------------------

    def authorized(self, node: Json, path: str) -> AuthorizedItem:
        reader = self.reader
        review = read_review(reader, node, path, direct=True)
        quantity = self.quantity(node, path)
        serviced = reader.period(node, "servicedPeriod", path)
        serviced_date = reader.string(node, "servicedDate", path)
        if serviced is None and serviced_date:
            serviced = Period(serviced_date, serviced_date)
        return AuthorizedItem(
            item_sequences=reader.integers(node, "itemSequence", path),
            product_or_service=reader.concept(node, "productOrService", path),
            quantity=quantity,
            review_action=review.code if review else None,
            status=review.status if review else ItemStatus.UNKNOWN,
            serviced=serviced,
            auth_number=(review.number if review else None) or reader.ext_text(node, path, EXT_AUTHORIZATION_NUMBER),
            validity=reader.ext_period(node, path, EXT_PREAUTH_PERIOD),
            notes=self.notes_of(node, path),
        )

    def quantity(self, node: Json, path: str) -> Quantity | None:
        """A Quantity's value and its unit text (else its code, e.g. an X12 673 unit)."""
        quantity = self.reader.obj(node, "quantity", path)
        if quantity is None:
            return None
        where = f"{path}.quantity"
        unit = self.reader.string(quantity, "unit", where) or self.reader.string(quantity, "code", where)
        return Quantity(self.reader.number(quantity, "value", where), unit)

    def item(self, node: Json, path: str, add_items: list[AuthorizedItem]) -> ItemDecision:
        reader = self.reader
        sequence = reader.integer(node, "itemSequence", path)
        if sequence is None:
            reader.warn(f"{path} has no itemSequence, so it cannot be matched to a requested item")
        review = read_review(reader, node, path, direct=True)
        if review is None:
            reader.warn(f"{path} has no review action; its status is unknown")
        elif review.code and review.code not in X12_306:
            display = f" ({review.display})" if review.display else ""
            reader.warn(f"{path}: review action code {review.code!r}{display} is not an X12 306 code; "
                        "its status is unknown")
        authorized = tuple(a for a in add_items if sequence is not None and sequence in a.item_sequences)
        status = review.status if review else ItemStatus.UNKNOWN
        if status is ItemStatus.MODIFIED and not authorized:
            reader.warn(f"{path} is A6 (modified) but no addItem says what was authorized")
        return ItemDecision(
            sequence=sequence,
            review_action=review.code if review else None,
            status=status,
            auth_number=(review.number if review else None) or reader.ext_text(node, path, EXT_AUTHORIZATION_NUMBER),
            administration_reference=reader.ext_text(node, path, EXT_ADMINISTRATION_REFERENCE),
            validity=reader.ext_period(node, path, EXT_PREAUTH_PERIOD),
            issue_date=reader.ext_date(node, path, EXT_PREAUTH_ISSUE_DATE),
            reason_codes=review.reasons if review else (),
            notes=self.notes_of(node, path),
            authorized=authorized,
        )

    # -- errors -----------------------------------------------------------------------------------

    def error(self, node: Json, path: str) -> ProcessingError:
        reader = self.reader
        code_node = reader.obj(node, "code", path)
        coding = reader.primary(code_node, f"{path}.code") if code_node is not None else None
        element, note_number = self.error_element(node, path)
        return ProcessingError(
            code=coding.code if coding else None,
            display=coding.display if coding else None,
            path=reader.ext_text(node, path, EXT_ERROR_PATH),
            element=element,
            followup=reader.ext_code(node, path, EXT_ERROR_FOLLOWUP) or reader.ext_text(node, path, EXT_ERROR_FOLLOWUP),
            note=self.note(note_number, f"{path}.extension(errorElement).processNote"),
            item_sequence=reader.integer(node, "itemSequence", path),
            detail_sequence=reader.integer(node, "detailSequence", path),
            subdetail_sequence=reader.integer(node, "subDetailSequence", path),
        )

    def error_element(self, node: Json, path: str) -> tuple[str | None, int | None]:
        """errorElement: sub-extensions ``error`` and ``processNote`` (2.2), or a plain valueString (2.0.1)."""
        reader = self.reader
        for ext_path, ext in reader.extensions(node, path, EXT_ERROR_ELEMENT):
            if "valueString" in ext:
                return reader.string(ext, "valueString", ext_path), None
            element: str | None = None
            note: int | None = None
            for part_path, part in reader.objects(ext, "extension", ext_path):
                if part.get("url") == "error":
                    element = element or reader.string(part, "valueString", part_path)
                elif part.get("url") == "processNote":
                    value = part.get("valuePositiveInt", part.get("valueInteger"))
                    note = note or (reader.as_int(value, f"{part_path}.valuePositiveInt") if value is not None
                                    else None)
            return element, note
        return None, None

    # -- requests for more information -------------------------------------------------------------

    def information_requests(self) -> tuple[InformationRequest, ...]:
        found: list[InformationRequest] = []
        index: BundleIndex | None = None
        for path, ref_node in self.reader.objects(self.response, "communicationRequest", CR):
            reference = self.reader.string(ref_node, "reference", path)
            resource: Json | None = None
            if reference and reference.startswith("#"):
                resource = next((c for _, c in self.reader.objects(self.response, "contained", CR)
                                 if c.get("id") == reference[1:]), None)
            elif reference and self.located.bundle is not None:
                entries = self.located.bundle.get("entry")
                entries = entries if isinstance(entries, list) else []
                index = index or BundleIndex(entries)
                positions = index.resolve(reference, self.located.full_url)
                resource = index.resource(positions[0]) if positions else None
            if resource is None or resource.get("resourceType") != "CommunicationRequest":
                self.reader.warn(f"{path} does not resolve to a CommunicationRequest in the Bundle")
                found.append(InformationRequest(reference, None, (), (), (), (), ()))
                continue
            found.append(self.communication_request(reference, resource))
        return tuple(found)

    def communication_request(self, reference: str | None, resource: Json) -> InformationRequest:
        reader = self.reader
        where = "CommunicationRequest"
        resource_id = reader.string(resource, "id", where)
        if resource_id:
            where = f"CommunicationRequest/{resource_id}"
        lines = [n for p, e in reader.extensions(resource, where, EXT_SERVICE_LINE)
                 for n in [reader.integer(e, "valuePositiveInt", p)] if n is not None]
        contents: list[str] = []
        modifiers: list[str] = []
        for payload_path, payload in reader.objects(resource, "payload", where):
            text = reader.string(payload, "contentString", payload_path)
            if text:
                contents.append(text)
            for p, e in reader.extensions(payload, payload_path, EXT_SERVICE_LINE):
                line = reader.integer(e, "valuePositiveInt", p)
                if line is not None:
                    lines.append(line)
            modifier = reader.ext_code(payload, payload_path, EXT_CONTENT_MODIFIER)
            if modifier:
                modifiers.append(modifier)
        return InformationRequest(
            reference=reference,
            id=resource_id,
            codes=tuple(contents),
            content_modifiers=tuple(modifiers),
            item_sequences=tuple(dict.fromkeys(lines)),
            medium=reader.concept_codes(resource, "medium", where),
            category=reader.concept_codes(resource, "category", where),
        )

    # -- the whole response -----------------------------------------------------------------------

    def identifiers(self) -> tuple[str, ...]:
        reader = self.reader
        found: list[str | None] = []
        request = reader.obj(self.response, "request", CR)
        if request is not None and "identifier" in request:
            found.append(reader.identifier(request.get("identifier"), f"{CR}.request.identifier"))
        found.extend(reader.identifier(node, path) for path, node in reader.objects(self.response, "identifier", CR))
        return tuple(dict.fromkeys(i for i in found if i))

    def outcome(self) -> str | None:
        outcome = self.reader.string(self.response, "outcome", CR)
        if outcome == "queued":
            self.reader.warn("outcome 'queued' is 2.0.1-era (PAS 2.2 allows complete, error, partial); "
                             "the status comes from the review actions")
        elif outcome is not None and outcome not in OUTCOMES:
            self.reader.warn(f"outcome {outcome!r} is not a ClaimResponse outcome code")
        return outcome

    def decision(self) -> PasDecision:
        reader, response = self.reader, self.response
        outcome = self.outcome()
        add_items = [self.authorized(node, path) for path, node in reader.objects(response, "addItem", CR)]
        items = [self.item(node, path, add_items) for path, node in reader.objects(response, "item", CR)]
        sequences = [i.sequence for i in items if i.sequence is not None]
        if len(sequences) != len(set(sequences)):
            reader.warn("several ClaimResponse items share an itemSequence")
        errors = tuple(self.error(node, path) for path, node in reader.objects(response, "error", CR))
        if outcome == "error" and not errors:
            reader.warn("outcome is 'error' but the ClaimResponse lists no error")
        whole = read_review(reader, response, CR, direct=True)
        status = overall_status([i.status for i in items], whole.status if whole else None,
                                has_errors=outcome == "error" or bool(errors))
        if whole is not None and items and whole.status not in {i.status for i in items}:
            reader.warn(f"the ClaimResponse-level review action {whole.code} disagrees with its items; "
                        "the items decide")
        information_requests = self.information_requests()
        request_identifiers = self.identifiers()
        request = reader.obj(response, "request", CR)
        bundle_identifier = None
        if self.located.bundle is not None and "identifier" in self.located.bundle:
            bundle_identifier = reader.identifier(self.located.bundle.get("identifier"), "Bundle.identifier")
        return PasDecision(
            status=status,
            preauth_ref=(reader.string(response, "preAuthRef", CR)
                         or reader.ext_text(response, CR, EXT_AUTHORIZATION_NUMBER)
                         or (whole.number if whole else None)),
            preauth_period=reader.period(response, "preAuthPeriod", CR),
            review_action=whole.code if whole else None,
            items=tuple(items),
            added_items=tuple(a for a in add_items if not set(a.item_sequences) & set(sequences)),
            errors=errors,
            information_requests=information_requests,
            outcome=outcome,
            disposition=reader.string(response, "disposition", CR),
            claim_response_id=reader.string(response, "id", CR),
            claim_response_full_url=self.located.full_url,
            request_reference=reader.string(request, "reference", f"{CR}.request") if request else None,
            request_identifiers=request_identifiers,
            bundle_identifier=bundle_identifier,
            created=reader.string(response, "created", CR),
            warnings=reader.warnings,  # last: every read above may have added one
        )


def parse_response(data: bytes | str | Mapping[str, Any], *, source: str = "response") -> PasDecision:
    """The payer's decision in a PAS response; :class:`~fhir_pa.errors.InvalidResponse` if there is none.

    ``source`` names the input in error messages (a file name, "$submit response from <payer>").
    """
    reader = FieldReader()
    located = locate_claim_response(load_document(data, source), source, reader)
    return _ClaimResponseReader(located, reader).decision()


__all__ = [
    "AuthorizedItem",
    "Coding",
    "DecisionStatus",
    "InformationRequest",
    "ItemDecision",
    "ItemStatus",
    "PasDecision",
    "Period",
    "ProcessingError",
    "Quantity",
    "decision_as_json",
    "parse_response",
]

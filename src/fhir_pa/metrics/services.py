"""Is a request for a medical item or service, or only for drugs? The MIPS measure counts the former only.

The Electronic Prior Authorization measure (like CMS-0057-F's Prior Authorization API) excludes drugs. An item is a
drug when it is coded in RxNorm or NDC, when it is a HCPCS J code (drugs administered other than orally), or when
its requested order is a MedicationRequest. A request counts when at least one item is positively something
else; a pharmacy Claim, or one with no readable item, does not, because an attestation must not rest on a guess.
"""

from __future__ import annotations

from fhir_pa.metrics.request_view import Json, RequestView
from fhir_pa.pas import codes

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
DRUG_SYSTEMS = frozenset({RXNORM, NDC})


def _codings(concept: object) -> list[Json]:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []


def _is_drug_coding(coding: Json) -> bool:
    system, code = coding.get("system"), coding.get("code")
    if system in DRUG_SYSTEMS:
        return True
    return system == codes.HCPCS and isinstance(code, str) and code.strip().upper().startswith("J")


def _orders_a_medication(view: RequestView, item: Json) -> bool:
    extensions = item.get("extension")
    for ext in extensions if isinstance(extensions, list) else []:
        if isinstance(ext, dict) and ext.get("url") == codes.EXT_REQUESTED_SERVICE:
            reference = ext.get("valueReference")
            resolved = view.resolve(reference, view.claim_url)
            if resolved is not None and resolved[0].get("resourceType") == "MedicationRequest":
                return True
            target = reference.get("reference") if isinstance(reference, dict) else None
            if isinstance(target, str) and target.split("/")[-2:-1] == ["MedicationRequest"]:
                return True
    return False


def is_medical_item(view: RequestView, item: Json) -> bool:
    codings = _codings(item.get("productOrService"))
    if not codings or any(_is_drug_coding(c) for c in codings):
        return False
    return not _orders_a_medication(view, item)


def requests_medical_service(view: RequestView) -> bool:
    """True when the Claim asks for at least one medical item or service that is not a drug."""
    if any(c.get("code") == "pharmacy" for c in _codings(view.claim.get("type"))):
        return False
    return any(is_medical_item(view, item) for item in view.claim_list("item"))

"""Who asked: the clinician's NPI and the requesting organization's TIN, from the request Bundle we sent.

MIPS reports per clinician (NPI) within a practice (TIN), so both are read from the exact bytes that reached the
payer rather than from EHR data that may have changed since. Our builder writes the NPI on the Practitioner
behind ``Claim.careTeam`` and the TIN on the ``Claim.provider`` Organization; other writers point
``Claim.provider`` at a PractitionerRole or a Practitioner, and use the identifier systems' OIDs, all read here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fhir_pa.metrics.request_view import Json, RequestView
from fhir_pa.pas import codes

NPI_SYSTEMS = frozenset({codes.NPI, "urn:oid:2.16.840.1.113883.4.6"})
TIN_SYSTEMS = frozenset({codes.TIN, "urn:oid:2.16.840.1.113883.4.4"})


@dataclass(frozen=True)
class Requester:
    npi: str | None
    tin: str | None


def identifier(resource: Json, systems: frozenset[str]) -> str | None:
    """The first identifier value in one of ``systems``."""
    found = resource.get("identifier")
    for ident in found if isinstance(found, list) else []:
        if isinstance(ident, dict) and ident.get("system") in systems:
            value = ident.get("value")
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def normalise_tin(value: str) -> str:
    """``12-3456789`` and ``123456789`` are one TIN; anything not made of digits is kept as written."""
    digits = value.replace("-", "").replace(" ", "")
    return digits if digits.isdigit() else value


def _candidates(view: RequestView) -> Iterator[tuple[Json, str | None]]:
    """``Claim.provider``, then each ``Claim.careTeam.provider``, resolved, in that order."""
    for reference in [view.claim.get("provider"), *(member.get("provider") for member in view.claim_list("careTeam"))]:
        resolved = view.resolve(reference, view.claim_url)
        if resolved is not None:
            yield resolved


def _people_and_places(view: RequestView) -> tuple[list[Json], list[Json]]:
    practitioners: list[Json] = []
    organizations: list[Json] = []
    for resource, url in _candidates(view):
        kind = resource.get("resourceType")
        if kind == "Practitioner":
            practitioners.append(resource)
        elif kind == "Organization":
            organizations.append(resource)
        elif kind == "PractitionerRole":
            for key, into in (("practitioner", practitioners), ("organization", organizations)):
                linked = view.resolve(resource.get(key), url)
                if linked is not None:
                    into.append(linked[0])
    return practitioners, organizations


def requester_of(view: RequestView) -> Requester:
    """The first NPI on a requesting Practitioner and the first TIN on a requesting Organization."""
    practitioners, organizations = _people_and_places(view)
    npi = next((n for p in practitioners if (n := identifier(p, NPI_SYSTEMS))), None)
    tin = next((t for o in organizations if (t := identifier(o, TIN_SYSTEMS))), None)
    return Requester(npi=npi, tin=normalise_tin(tin) if tin else None)

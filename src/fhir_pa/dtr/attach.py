"""Hand completed DTR documentation to PAS (PAS 2.2.1 §2.10, DTR spec-156/157).

The PAS request Bundle carries the DTR QR Bundle as an entry and the Claim points at it from a
``supportingInfo`` AdditionalInformation slice (category ``PASTempCodes#additionalInformation``, with the
``documentInformation`` extension 1..1); :func:`fhir_pa.pas.bundle.build_request_bundle` does the wiring.
Only completed responses go: an in-progress form is not documentation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir_pa.dtr.response import Version, check_qr_bundle, check_response
from fhir_pa.errors import Issue, ProfileError
from fhir_pa.pas.order import Documentation, PriorAuthOrder


def attach_documentation(order: PriorAuthOrder, qr_bundle: Mapping[str, Any], *, report_type: str = "OZ",
                         description: str | None = None, version: Version = "2.2") -> PriorAuthOrder:
    """A copy of ``order`` that also sends ``qr_bundle``; :class:`ProfileError` if it is not completed DTR output
    (a DTR QR Bundle whose response is ``completed`` and valid for DTR ``version``)."""
    issues = check_qr_bundle(qr_bundle)
    if not issues:
        response = qr_bundle["entry"][0]["resource"]
        issues += [Issue(f"Bundle.entry[0].resource{i.path.removeprefix('QuestionnaireResponse')}", i.message,
                         i.rule, i.severity) for i in check_response(response, version)]
        if response.get("status") not in ("completed", "amended"):
            issues.append(Issue("Bundle.entry[0].resource.status", "only a completed QuestionnaireResponse can be "
                                "sent as documentation", "status"))
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise ProfileError(errors)
    documentation = Documentation(bundle=dict(qr_bundle), report_type=report_type, description=description)
    return order.model_copy(update={"documentation": [*order.documentation, documentation]})


__all__ = ["attach_documentation"]

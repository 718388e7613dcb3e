"""Adaptive forms: the ``$next-question`` loop (DTR 2.2 §1.6, SDC) as a flow.

The payer grows the QuestionnaireResponse's contained Questionnaire one step at a time and alone decides when
the form is done (``status = completed``, spec-148). Between steps a caller-supplied callback populates and
answers the new items (CQL, then the user). The loop is bounded, so a payer that never completes cannot keep
us forever. Any ``coverage-information`` the payer puts on the returned QR root is handed back to the caller,
who associates it with the orders (spec-46/47).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from fhir_pa.dtr.completion import ensure_complete
from fhir_pa.dtr.package import HEADERS, QuestionnairePackage, raise_for_outcome
from fhir_pa.errors import InvalidResponse, Issue, PayerError
from fhir_pa.fhir.flow import Flow, exchange
from fhir_pa.pas.order import CRD_COVERAGE_INFORMATION

Json = dict[str, Any]
#: The callback: gets the payer's latest QuestionnaireResponse, returns the one to send next.
Answer = Callable[[Json], Json]
NextVersion = Literal["2.2", "2.1"]

ADAPTIVE_EXT = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-questionnaireAdaptive"
IN_NAMES = {"2.2": "questionnaire-response", "2.1": "questionnaire-response-in"}
#: Output part names accepted from any version (SDC/2.2 ``return``, 2.1 ``questionnaire-response-out``).
OUT_NAMES = frozenset({"return", "questionnaire-response-out", "questionnaire-response"})
DEFAULT_MAX_ROUNDS = 50


class AdaptiveIncomplete(PayerError):
    """The payer did not complete the adaptive form within the allowed number of rounds."""

    code = "adaptive-incomplete"


@dataclass(frozen=True)
class AdaptiveResult:
    """The completed adaptive response, how many ``$next-question`` calls it took, and the payer's coverage info."""

    response: Json
    rounds: int
    #: ``ext-coverage-information`` extensions on the final QR root (spec-148), as sent.
    coverage_information: tuple[Json, ...]
    warnings: tuple[Issue, ...] = ()


def next_question_url(base: str) -> str:
    return f"{base.rstrip('/')}/Questionnaire/$next-question"


def adaptive_base(package: QuestionnairePackage, payer_base: str) -> str:
    """Where ``$next-question`` goes: the questionnaireAdaptive URL, or the package's payer (``valueBoolean``)."""
    for ext in package.questionnaire.get("extension") or []:
        if isinstance(ext, Mapping) and ext.get("url") == ADAPTIVE_EXT:
            url = ext.get("valueUrl") or ext.get("valueUri")
            if isinstance(url, str) and url:
                return url.split("/Questionnaire/$next-question")[0]
    return payer_base


def next_question_parameters(response: Mapping[str, Any], version: NextVersion = "2.2") -> Json:
    """The ``$next-question`` input: the QR under the 2.2 name, or the 2.1 ``questionnaire-response-in``."""
    if response.get("resourceType") != "QuestionnaireResponse":
        raise InvalidResponse("$next-question needs a QuestionnaireResponse", path="resourceType")
    return {"resourceType": "Parameters",
            "parameter": [{"name": IN_NAMES[version], "resource": copy.deepcopy(dict(response))}]}


def check_next_question_parameters(parameters: Any, version: NextVersion = "2.2") -> list[Issue]:
    """Problems with ``$next-question`` input: one QuestionnaireResponse under ``version``'s name, with the
    Questionnaire it answers contained (SDC adaptive)."""
    if not isinstance(parameters, Mapping) or parameters.get("resourceType") != "Parameters":
        return [Issue("resourceType", "the input must be a Parameters resource", "structure")]
    name = IN_NAMES[version]
    parts = [p for p in parameters.get("parameter") or [] if isinstance(p, Mapping) and p.get("name") == name]
    if len(parts) != 1:
        return [Issue("Parameters.parameter", f"exactly one '{name}' is required (found {len(parts)})",
                      "cardinality")]
    response = parts[0].get("resource")
    if not isinstance(response, Mapping) or response.get("resourceType") != "QuestionnaireResponse":
        return [Issue(f"Parameters.parameter('{name}').resource", "must be a QuestionnaireResponse", "type")]
    target = response.get("questionnaire")
    contained = {c.get("id") for c in response.get("contained") or [] if isinstance(c, Mapping)
                 and c.get("resourceType") == "Questionnaire"}
    if not (isinstance(target, str) and target.startswith("#") and target[1:] in contained):
        return [Issue(f"Parameters.parameter('{name}').resource.questionnaire", "an adaptive response must point "
                      "at its contained Questionnaire", "sdc-adaptive")]
    return []


def read_next_question(status: int, body: bytes) -> Json:
    """The returned QR, from Parameters (any known part name) or bare; 4xx + OperationOutcome → PayerRejected."""
    raise_for_outcome(status, body, "$next-question")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidResponse(f"$next-question: HTTP {status} with a body that is not JSON", path="$") from None
    if isinstance(data, Mapping) and data.get("resourceType") == "QuestionnaireResponse":
        return dict(data)
    if isinstance(data, Mapping) and data.get("resourceType") == "Parameters":
        for n, part in enumerate(data.get("parameter") or []):
            if not isinstance(part, Mapping) or str(part.get("name") or "").lower() not in OUT_NAMES:
                continue
            resource = part.get("resource")
            if isinstance(resource, Mapping) and resource.get("resourceType") == "QuestionnaireResponse":
                return dict(resource)
            raise InvalidResponse("$next-question: the return part holds no QuestionnaireResponse",
                                  path=f"Parameters.parameter[{n}].resource")
    raise InvalidResponse("$next-question: the answer holds no QuestionnaireResponse", path="$")


def coverage_information(response: Mapping[str, Any]) -> tuple[Json, ...]:
    return tuple(copy.deepcopy(dict(e)) for e in response.get("extension") or []
                 if isinstance(e, Mapping) and e.get("url") == CRD_COVERAGE_INFORMATION)


def _contained_items(response: Mapping[str, Any]) -> int:
    def count(node: Any) -> int:
        items = node.get("item") if isinstance(node, Mapping) else None
        return sum(1 + count(i) for i in items) if isinstance(items, list) else 0
    return sum(count(c) for c in response.get("contained") or []
               if isinstance(c, Mapping) and c.get("resourceType") == "Questionnaire")


def _contained_questionnaire(response: Mapping[str, Any]) -> Mapping[str, Any] | None:
    target = response.get("questionnaire")
    for resource in response.get("contained") or []:
        if isinstance(resource, Mapping) and resource.get("resourceType") == "Questionnaire" and (
                not isinstance(target, str) or target == f"#{resource.get('id')}"):
            return resource
    return None


def adaptive_flow(base: str, response: Mapping[str, Any], answer: Answer, *, version: NextVersion = "2.2",
                  max_rounds: int = DEFAULT_MAX_ROUNDS, validate: bool = True) -> Flow[AdaptiveResult]:
    """Run ``$next-question`` from ``response`` (the package's draft QR) until the payer completes it.

    ``answer`` is called with every in-progress QR the payer returns and gives back the QR to send next; it is
    not called on the completed one. With ``validate`` the QR the callback returns is checked against its
    contained Questionnaire first (spec-146: never advance on invalid answers); an
    :class:`~fhir_pa.dtr.completion.IncompleteResponse` stops the loop before anything is sent.
    """
    url = next_question_url(base)
    current: Mapping[str, Any] = response
    warnings: list[Issue] = []
    for round_no in range(1, max_rounds + 1):
        body = json.dumps(next_question_parameters(current, version), separators=(",", ":")).encode("utf-8")
        reply = yield from exchange(httpx.Request("POST", url, content=body, headers=HEADERS))
        returned = read_next_question(reply.status_code, reply.content)
        if returned.get("status") == "completed":
            return AdaptiveResult(returned, round_no, coverage_information(returned), tuple(warnings))
        if round_no > 1 and _contained_items(returned) <= _contained_items(current):
            warnings.append(Issue("QuestionnaireResponse.contained", f"round {round_no}: the payer added no "
                                  "question and did not complete the form", "spec-148", "warning"))
        current = answer(returned)
        if not isinstance(current, Mapping) or current.get("resourceType") != "QuestionnaireResponse":
            raise InvalidResponse("the answer callback must return a QuestionnaireResponse", path="resourceType")
        questionnaire = _contained_questionnaire(current)
        if validate and questionnaire is not None:
            ensure_complete(current, questionnaire)
    raise AdaptiveIncomplete(f"the payer did not complete the adaptive form in {max_rounds} rounds",
                             path="QuestionnaireResponse.status")


__all__ = [
    "AdaptiveIncomplete",
    "AdaptiveResult",
    "Answer",
    "adaptive_base",
    "adaptive_flow",
    "check_next_question_parameters",
    "coverage_information",
    "next_question_parameters",
    "next_question_url",
    "read_next_question",
]

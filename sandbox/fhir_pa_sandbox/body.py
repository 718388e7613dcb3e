"""Read a FHIR JSON request body: media type, size, JSON, and the expected resource type, or the refusal.

Shared by ``$submit``, ``$inquire`` and the Subscription calls so every one refuses a bad body the same way
(415, 413 or 400 with one OperationOutcome issue).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fhir_pa_sandbox.outcome import FHIR_JSON, refuse
from fhir_pa_sandbox.state import SandboxState

ACCEPTED_TYPES = (FHIR_JSON, "application/json")


async def read_resource(request: Request, state: SandboxState, resource_type: str,
                        wanted: str) -> Mapping[str, Any] | Response:
    """The body as a ``resource_type`` resource, or the answer refusing it (``wanted``: "$submit takes a ...")."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ACCEPTED_TYPES:
        got = media or "no Content-Type"
        return refuse(415, "not-supported", f"send the {resource_type} as {FHIR_JSON} (got {got})")
    limit = state.config.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return refuse(413, "too-costly", f"the request is larger than {limit} bytes")
    body = await request.body()
    if len(body) > limit:
        return refuse(413, "too-costly", f"the request is larger than {limit} bytes")
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        return refuse(400, "structure", "the body is not UTF-8 JSON")
    except json.JSONDecodeError as exc:
        return refuse(400, "structure", f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    if not isinstance(data, dict) or data.get("resourceType") != resource_type:
        kind = data.get("resourceType") if isinstance(data, dict) else type(data).__name__
        return refuse(400, "structure", f"{wanted}, not {kind!s}", resource_type)
    return data

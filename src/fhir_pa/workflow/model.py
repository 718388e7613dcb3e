"""What the workflow takes per order: the order itself, and where it lives in the EHR (for CRD and DTR).

The EHR part is optional: without it the order goes straight to PAS (an order already signed and checked, as a
revenue-cycle batch often has). The JSON form ``{"order": {...}, "ehr": {...}}`` is one line of a batch's NDJSON
file; a bare order object is accepted too.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from fhir_pa.errors import InputError
from fhir_pa.pas.order import PriorAuthOrder, order_from_data

Ref = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")]
Id = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9\-.]{1,64}$")]


class EhrContext(BaseModel):
    """The order's patient, user and coverage as the EHR's FHIR server knows them (ids, not copies)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patient_id: Id
    #: The signing clinician (``PractitionerRole/x`` or ``Practitioner/x``), the CDS Hooks ``userId``.
    user: Ref
    encounter_id: Id | None = None
    #: The Coverage the order is for; default: the patient's first active Coverage in the EHR.
    coverage_id: Id | None = None


class WorkflowOrder(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    order: PriorAuthOrder
    ehr: EhrContext | None = Field(default=None)

    @property
    def order_id(self) -> str:
        return self.order.order_id


def workflow_order(data: Any, *, source: str = "order") -> WorkflowOrder:
    """Read ``{"order": ..., "ehr": ...}`` or a bare order; errors name the field path, never the value."""
    if isinstance(data, dict) and "order" in data:
        try:
            ehr = EhrContext.model_validate(data["ehr"]) if data.get("ehr") is not None else None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "ehr." + ".".join(str(p) for p in first["loc"]) if first["loc"] else "ehr"
            raise InputError(f"{source}: {first['msg']}", path=where) from None
        extra = sorted(set(data) - {"order", "ehr"})
        if extra:
            raise InputError(f"{source}: unknown field {extra[0]!r}", path=extra[0])
        try:
            order = order_from_data(data["order"], source=source)
        except InputError as exc:
            raise InputError(exc.message, path=f"order.{exc.path}" if exc.path else "order") from None
        return WorkflowOrder(order=order, ehr=ehr)
    return WorkflowOrder(order=order_from_data(data, source=source))


def as_workflow_order(item: WorkflowOrder | PriorAuthOrder) -> WorkflowOrder:
    return item if isinstance(item, WorkflowOrder) else WorkflowOrder(order=item)

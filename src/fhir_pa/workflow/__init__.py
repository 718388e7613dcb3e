"""The whole path for one order: CRD, DTR when the payer wants documentation, PAS, tracking to the final decision.

Typical use::

    with PasClient(payer, ledger=ledger) as pas, CrdClient(crd_payer, ehr) as crd, DtrClient(payer) as dtr:
        flow = Workflow(pas, crd=crd, dtr=dtr, ehr=ehr, complete_form=ask_the_clinician)
        result = flow.run(WorkflowOrder(order=order, ehr=EhrContext(patient_id="p1", user="PractitionerRole/r1")))
    result.outcome   # approved, denied, ..., no-auth-needed, needs-documentation, error
"""

from fhir_pa.workflow.core import CHART_TYPES, AsyncFormHook, FormHook, FormTask, WorkflowSettings
from fhir_pa.workflow.model import EhrContext, WorkflowOrder, workflow_order
from fhir_pa.workflow.result import FormOutcome, WorkflowResult
from fhir_pa.workflow.run import AsyncWorkflow, Workflow

__all__ = [
    "CHART_TYPES",
    "AsyncFormHook",
    "AsyncWorkflow",
    "EhrContext",
    "FormHook",
    "FormOutcome",
    "FormTask",
    "Workflow",
    "WorkflowOrder",
    "WorkflowResult",
    "WorkflowSettings",
    "workflow_order",
]

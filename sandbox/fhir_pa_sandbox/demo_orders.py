"""Synthetic orders for the demo and the tests: made-up people, real code shapes."""

from __future__ import annotations

from datetime import date, timedelta

from fhir_pa.pas.order import PriorAuthOrder, order_from_data

#: Demo cases: name → (CPT/HCPCS code, code system, the decision the default sandbox rules give).
CASES: dict[str, tuple[str, str, str]] = {
    "approved": ("72148", "cpt", "approved"),
    "denied": ("97110", "cpt", "denied"),
    "pended": ("27447", "cpt", "pended"),
    "modified": ("E0601", "hcpcs", "modified"),
}


def demo_order(case: str, *, order_id: str | None = None, service_date: date | None = None,
               index: int = 0) -> PriorAuthOrder:
    """One synthetic order for ``case`` (a key of :data:`CASES`); ``index`` varies the patient."""
    code, system, _ = CASES[case]
    when = service_date or date.today() + timedelta(days=14)
    return order_from_data({
        "order_id": order_id or f"demo-{case}-{index}",
        "patient": {"given": ["Alex"], "family": f"Sample{index}", "birth_date": "1968-04-12", "gender": "female",
                    "mrn": f"MRN{100000 + index}",
                    "address": {"lines": ["1 Main St"], "city": "Springfield", "state": "IL", "postal_code": "62701"}},
        "coverage": {"member_id": f"M{500000 + index}", "subscriber_id": f"S{500000 + index}", "group": "G-100"},
        "insurer": {"name": "Sandbox Health Plan", "payer_id": "SANDBOX", "tin": "123456789"},
        "requester": {
            "practitioner": {"given": ["Robin"], "family": "Doctor", "npi": "1234567893"},
            "organization": {"name": "Springfield Clinic", "npi": "1467586115", "tin": "987654321",
                             "address": {"lines": ["2 Clinic Rd"], "city": "Springfield", "state": "IL",
                                         "postal_code": "62701"}},
        },
        "services": [{"code": code, "code_system": system, "quantity": 1, "unit": "unit",
                      "service_date": when.isoformat()}],
        "diagnoses": [{"code": "M54.50", "display": "Low back pain, unspecified"}],
        "urgency": "standard",
    })

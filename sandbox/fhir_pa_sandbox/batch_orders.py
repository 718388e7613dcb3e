"""Synthetic batch input for the sandbox payer: a mix of every outcome its rules give, as NDJSON lines.

Each order is for the sandbox EHR's patient ``pat-alex`` (so CRD's prefetch and DTR's chart find real data)
unless it is one of the few "already signed" orders without an EHR part, which go straight to PAS. The mix (by
CPT/HCPCS code and the sandbox rules): approved, denied, pended then approved, pended then denied, modified, no
prior auth needed (CRD), and documentation needed (DTR form the chart cannot complete: held).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

#: code → (code system, weight, what the sandbox does with it).
MIX: dict[str, tuple[str, int, str]] = {
    "72148": ("cpt", 30, "approved"),
    "97110": ("cpt", 10, "denied"),
    "27447": ("cpt", 15, "pended, then approved"),
    "29881": ("cpt", 5, "pended, then denied"),
    "E0601": ("hcpcs", 10, "modified"),
    "77067": ("cpt", 10, "no prior auth needed (CRD: satisfied)"),
    "94660": ("cpt", 5, "no prior auth needed (CRD: no-auth)"),
    "94640": ("cpt", 5, "documentation needed (DTR form held for a person)"),
}
EHR = {"patient_id": "pat-alex", "user": "PractitionerRole/role-robin", "encounter_id": "enc-alex",
       "coverage_id": "cov-alex"}


def sample_order(n: int, code: str, *, prefix: str, expedited: bool, with_ehr: bool) -> dict[str, Any]:
    system = MIX[code][0]
    when = date.today() + timedelta(days=7 + n % 21)
    order: dict[str, Any] = {
        "order_id": f"{prefix}-{n:06d}",
        "patient": {"given": ["Alex"], "family": "Sample", "birth_date": "1968-04-12", "gender": "female",
                    "mrn": "MRN100000"},
        "coverage": {"member_id": "M500000", "subscriber_id": "S500000", "group": "G-100"},
        "insurer": {"name": "Sandbox Health Plan", "payer_id": "SANDBOX", "tin": "123456789"},
        "requester": {"practitioner": {"given": ["Robin"], "family": "Doctor", "npi": "1234567893"},
                      "organization": {"name": "Springfield Clinic", "npi": "1467586115", "tin": "987654321"}},
        "services": [{"code": code, "code_system": system, "quantity": 1, "unit": "unit",
                      "service_date": when.isoformat()}],
        "diagnoses": [{"code": "J44.9", "display": "Chronic obstructive pulmonary disease, unspecified"}],
        "urgency": "expedited" if expedited else "standard",
    }
    return {"order": order, "ehr": dict(EHR)} if with_ehr else {"order": order}


def sample_orders(count: int, *, prefix: str = "batch", seed: int = 1, crd_share: float = 0.9
                  ) -> Iterator[dict[str, Any]]:
    """``count`` orders drawn from :data:`MIX` (repeatable for one ``seed``); ``crd_share`` of them carry an EHR
    part (CRD, DTR), the rest go straight to PAS."""
    rng = random.Random(seed)  # noqa: S311 - repeatable synthetic data, not security
    codes = list(MIX)
    weights = [MIX[c][1] for c in codes]
    for n in range(count):
        code = rng.choices(codes, weights)[0]
        with_ehr = rng.random() < crd_share or code in ("77067", "94660", "94640")
        yield sample_order(n, code, prefix=prefix, expedited=rng.random() < 0.2, with_ehr=with_ehr)


def write_sample_orders(path: Path, count: int, *, prefix: str = "batch", seed: int = 1,
                        crd_share: float = 0.9) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for order in sample_orders(count, prefix=prefix, seed=seed, crd_share=crd_share):
            out.write(json.dumps(order, separators=(",", ":")) + "\n")
    return path

"""Client cost of a CRD order-sign: discovery (cached), prefetch from the EHR, JWT, hook call, decision.

The sandbox payer and its EHR run in their own process, so the CPU measured here is the client's alone. Each
call prefetches the full standard set (patient, encounter, coverage, practitioner roles, practitioners,
organizations, locations; about ten EHR reads). The baseline, measured in the same run against the same server,
is raw httpx: the very same hook request bytes POSTed with JWTs signed beforehand, plus the same EHR reads
the prefetch made, replayed as plain GETs. Run: ``make bench`` or ``python -m benchmarks.crd_bench --n 300``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tracemalloc
from typing import Any

import httpx

from benchmarks.submit_bench import cpu, sandbox_process
from fhir_pa.auth.bearer import BearerToken
from fhir_pa.auth.keys import generate_key, public_jwks
from fhir_pa.crd.authorization import StaticTokenIssuer
from fhir_pa.crd.client import CrdClient, CrdPayer, CrdResult, Ehr, TimeBudget
from fhir_pa.crd.hooks import order_sign_context
from fhir_pa.crd.identity import CdsClientIdentity


def _order(i: int) -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "id": f"bench-{i}", "status": "draft", "intent": "order",
            "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "94640"}]},
            "subject": {"reference": "Patient/pat-alex"}, "requester": {"reference": "PractitionerRole/role-robin"},
            "authoredOn": "2026-12-01"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300, help="hook calls per phase (default 300)")
    n: int = parser.parse_args().n
    with sandbox_process() as base:
        key = generate_key("ES384")
        httpx.post(f"{base}/_sandbox/clients", json={"client_id": "crd-bench", "jwks": public_jwks(key),
                                                     "scopes": ["system/Claim.c"]}).raise_for_status()
        token = httpx.post(f"{base}/_sandbox/ehr-token", json={"scopes": ["user/*.rs"], "lifetime": 3600}).json()
        ehr_base = f"{base}/ehr/fhir"
        identity = CdsClientIdentity(key, "crd-bench")
        ehr_reads: list[httpx.Request] = []
        ehr_http = httpx.Client(event_hooks={"request": [ehr_reads.append]})
        ehr = Ehr(fhir_server=ehr_base, http=ehr_http, auth=BearerToken(token["access_token"]),
                  token_issuer=StaticTokenIssuer(token["access_token"], token["scope"], "bench-payer"))
        hook_posts: list[httpx.Request] = []
        payer_http = httpx.Client(event_hooks={"request": [hook_posts.append]})
        payer = CrdPayer(cds_base_url=f"{base}/crd/cds-services", identity=identity,
                         budget=TimeBudget(default=30, cold=30))
        contexts = [order_sign_context(user_id="PractitionerRole/role-robin", patient_id="pat-alex",
                                       encounter_id="enc-alex", draft_orders=[_order(i)], fhir_server=ehr_base)
                    for i in range(n)]
        with CrdClient(payer, ehr, http=payer_http) as client:
            client.call("order-sign", contexts[0])  # warm: discovery, connections
            hook_posts.clear()
            ehr_reads.clear()
            results: list[CrdResult] = []
            full_cpu, full_wall = cpu(lambda: results.extend(client.call("order-sign", c) for c in contexts))
            tracemalloc.start()
            for context in contexts[:50]:
                client.call("order-sign", context)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert all(r.answered and r.decisions[0].pa_needed == "auth-needed" for r in results), "unexpected answers"
        posts, reads = hook_posts[:n], ehr_reads[: len(ehr_reads) // (n + 50) * n]
        bodies = [(str(p.url), p.content) for p in posts]
        jwts = [identity.jwt(url) for url, _ in bodies]
        read_urls = [str(r.url) for r in reads]
        auth_header = {"Authorization": f"Bearer {token['access_token']}"}
        with httpx.Client() as raw:
            raw.get(read_urls[0], headers=auth_header)

            def replay() -> None:
                for url in read_urls:
                    raw.get(url, headers=auth_header).raise_for_status()
                for (url, body), jwt in zip(bodies, jwts, strict=True):
                    raw.post(url, content=body, headers={"Content-Type": "application/json",
                                                         "Authorization": f"Bearer {jwt}"}).raise_for_status()
            raw_cpu, raw_wall = cpu(replay)
        ehr_http.close()

    def per(seconds: float) -> float:
        return round(seconds / n * 1000, 3)

    print(json.dumps({
        "hook_calls": n,
        "ehr_reads_per_call": round(len(reads) / n, 1),
        "client_cpu_ms_per_call": per(full_cpu),
        "raw_httpx_cpu_ms_per_call": per(raw_cpu),
        "cpu_ratio_full_to_raw": round(full_cpu / raw_cpu, 2),
        "wall_ms_per_call": per(full_wall),
        "raw_wall_ms_per_call": per(raw_wall),
        "calls_per_second": round(n / full_wall, 1),
        "peak_traced_memory_mb_50_calls": round(peak / 1e6, 1),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }, indent=2))


if __name__ == "__main__":
    main()

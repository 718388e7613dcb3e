"""Client cost of a PAS submission: build, check and submit N orders to the sandbox payer.

The sandbox runs in its own process, so the CPU time measured here is the client's alone. The baseline,
measured in the same run against the same server, is a raw ``httpx.Client.post`` of the very same bytes with
a ready token: the floor any client must pay for HTTP. Run: ``make bench`` or
``python -m benchmarks.submit_bench --n 1000``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from fhir_pa.auth.keys import generate_key, public_jwks, write_key_pair
from fhir_pa.config import PAS_SCOPES, PayerConfig
from fhir_pa.ledger.store import Ledger
from fhir_pa.pas.bundle import build_request_bundle
from fhir_pa.pas.checks import check_request_bundle
from fhir_pa.pas.decision import parse_response
from fhir_pa.pas.submit import PasClient, SubmitResult, make_auth
from fhir_pa_sandbox.demo_orders import demo_order


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def sandbox_process() -> Iterator[str]:
    port = _free_port()
    exe = Path(sys.executable).with_name("fhir-pa")
    proc = subprocess.Popen([str(exe), "sandbox", "--port", str(port)],  # noqa: S603 - our own CLI
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/fhir/metadata", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("sandbox did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def cpu(fn: Callable[[], object]) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) spent in ``fn``."""
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000, help="requests per phase (default 1000)")
    args = parser.parse_args()
    n: int = args.n
    orders = [demo_order("approved", order_id=f"bench-{i}", index=i) for i in range(n)]

    with tempfile.TemporaryDirectory() as tmp, sandbox_process() as base:
        key = generate_key("ES384")
        private_path, _ = write_key_pair(key, Path(tmp) / "keys")
        httpx.post(f"{base}/_sandbox/clients", json={"client_id": "bench", "jwks": public_jwks(key),
                                                     "scopes": list(PAS_SCOPES)}).raise_for_status()
        payer = PayerConfig(fhir_base_url=f"{base}/fhir", client_id="bench", key_path=private_path)
        ledger = Ledger.at_path(Path(tmp) / "ledger.sqlite")

        # Pieces alone, for the breakdown.
        built = [build_request_bundle(o) for o in orders[:200]]
        build_cpu, _ = cpu(lambda: [build_request_bundle(o) for o in orders[:200]])
        check_cpu, _ = cpu(lambda: [check_request_bundle(b.bundle) for b in built])

        # The full client path: build, check, ledger, token, $submit, parse, ledger.
        with PasClient(payer, ledger=ledger) as client:
            results: list[SubmitResult] = []
            full_cpu, full_wall = cpu(lambda: results.extend(client.submit(o) for o in orders))
            # Memory on a separate slice: tracemalloc slows Python down, so it never runs while timing.
            extra = [demo_order("approved", order_id=f"bench-mem-{i}", index=i) for i in range(100)]
            tracemalloc.start()
            for order in extra:
                client.submit(order)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert all(r.decision.status.value == "approved" for r in results), "unexpected decisions"
        bodies = [ledger.get(r.record_id).request_body for r in results]
        responses = [e.response_body for r in results[:200] for e in ledger.exchanges(r.record_id)[-1:]]
        parse_cpu, _ = cpu(lambda: [parse_response(body or b"") for body in responses])

        # Baseline: the same bytes, raw httpx posts with a token fetched beforehand.
        auth = make_auth(payer)
        with httpx.Client() as http:
            http.get(f"{base}/fhir/metadata", auth=auth)  # fetch the token outside the timed part
            token = auth_header(http, base, auth)
            headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json",
                       "Authorization": token}
            url = f"{base}/fhir/Claim/$submit"
            raw_cpu, raw_wall = cpu(lambda: [http.post(url, content=b, headers=headers).raise_for_status()
                                             for b in bodies])
        ledger.close()

    def per(seconds: float, count: int = n) -> float:
        return seconds / count * 1000

    figures = {
        "requests": n,
        "client_cpu_ms_per_request": round(per(full_cpu), 3),
        "raw_httpx_cpu_ms_per_request": round(per(raw_cpu), 3),
        "cpu_ratio_full_to_raw": round(full_cpu / raw_cpu, 2),
        "wall_ms_per_request": round(per(full_wall), 3),
        "raw_wall_ms_per_request": round(per(raw_wall), 3),
        "build_cpu_ms": round(per(build_cpu, 200), 3),
        "check_cpu_ms": round(per(check_cpu, 200), 3),
        "parse_cpu_ms": round(per(parse_cpu, len(responses)), 3),
        "peak_traced_memory_mb_100_submits": round(peak / 1e6, 1),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(figures, indent=2))


def auth_header(http: httpx.Client, base: str, auth: httpx.Auth) -> str:
    request = http.build_request("GET", f"{base}/fhir/metadata")
    flow = auth.sync_auth_flow(request)
    sent = next(flow)
    while "authorization" not in sent.headers:
        sent = flow.send(http.send(sent))
    return str(sent.headers["authorization"])


if __name__ == "__main__":
    main()

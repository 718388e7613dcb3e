"""Client cost of ``fhir-pa batch``: N orders through CRD, DTR, PAS and tracking, against raw httpx posts.

Three processes: the sandbox payer (with pend delays scaled by 0.25), the ``fhir-pa batch`` command under test,
and a baseline. Wall time and CPU (user + sys) of each child are read from ``os.wait4``, so the sandbox's CPU is
never counted as client CPU; peak RSS too, unless it is only what the child inherited from us (see
:func:`run_child`). The CLI's fixed cost is measured apart on a 1-order file (the
same command, a fresh state), so CPU per order is shown both raw and as the marginal cost
``(cpu(N) - cpu(1)) / (N - 1)``.

The baseline, measured in the same run against the same sandbox, is a child that POSTs *the very bytes* the
batch stored in its ledger (``requests.request_body``) to ``Claim/$submit`` with ``httpx.AsyncClient`` at the same
concurrency and a bearer token fetched beforehand. The sandbox answers those as duplicates of requests it
already decided (same Bundle identifiers): the run checks that each identifier is still decided exactly once
and got exactly one more duplicate. The baseline's CPU "per order" is its CPU over the same N orders (orders that
needed no PAS request cost it nothing); per post is shown too. The baseline is only the PAS posts; the other
HTTP exchanges of the full flow (CDS Hooks discovery and calls, EHR prefetch reads, DTR packages, token
requests, ClaimResponse polls) are counted by the sandbox (a counting middleware, its ``/_sandbox/stats``) and
in the ledger, and shown per order.

Run: ``make bench`` or
``python -m benchmarks.batch_bench [--orders 10000] [--concurrency 16] [--json] [--profile FILE] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

#: The batch command, as the integration tests start it (tests/integration/batch_env.py).
FHIR_PA = [sys.executable, "-m", "fhir_pa.cli.main"]
#: Same tracking knobs as ``BatchEnv.args``: pended requests are polled soon and often.
POLL_OPTIONS = ["--poll-first", "0.5", "--poll-max", "2", "--poll-rate", "100"]
PEND_DELAY_SCALE = 0.25
CLIENT_ID = "batch-bench"
#: Outcomes a healthy run ends in; ``pended`` (not tracked to the end) and ``error`` fail the benchmark.
SETTLED = {"approved", "denied", "partial", "modified", "cancelled", "no-auth-needed", "needs-documentation"}
#: Sandbox counters shown for the full flow (deltas over the batch run).
FLOW_COUNTERS = ("crd_discovery", "crd_hooks", "crd_ehr_reads", "dtr_packages", "dtr_next_questions",
                 "submissions_received", "decisions", "duplicates", "claim_response_reads", "tokens_issued",
                 "inquiries", "searches", "subscriptions_created", "notifications_sent", "decided_later")


class BenchError(SystemExit):
    """A failed check: the benchmark stops with a message and exit code 1."""

    def __init__(self, message: str) -> None:
        super().__init__(f"batch_bench: FAILED: {message}")


# --- child processes: measured with os.wait4 ---------------------------------------------------------------

@dataclass(frozen=True)
class ChildRun:
    """One child process: exit code, wall seconds, CPU seconds (user, sys) and peak RSS."""

    returncode: int
    wall: float
    user: float
    sys: float
    maxrss_mb: float
    #: ``ru_maxrss`` (exact: above what the child inherited) or ``VmHWM`` (sampled from /proc every 20 ms).
    maxrss_source: str
    stdout: str
    stderr: str

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def _vm_hwm_kib(pid: int) -> int | None:
    """The peak resident set of a live process since its exec (Linux ``VmHWM``), in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_child(cmd: list[str], *, folder: Path, name: str, env: dict[str, str] | None = None,
              timeout: float = 3600.0) -> ChildRun:
    """Run ``cmd`` to its end; its own rusage comes from ``os.wait4`` (not the RUSAGE_CHILDREN sum).

    Peak RSS: Linux records the RSS peak of the address space a child replaces at exec, which is ours (it
    was forked from us), so a child's ``ru_maxrss`` is at least our own peak. It is used only when it is above
    our peak (then it is the child's own, exactly); otherwise the peak is the child's ``VmHWM``, sampled every
    20 ms while it runs (monotonic, so at most the last 20 ms of growth can be missed).
    """
    out_path, err_path = folder / f"{name}.stdout", folder / f"{name}.stderr"
    inherited = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm = [0]
    done = threading.Event()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)  # noqa: S603 - our own commands

        def sample() -> None:
            while not done.wait(0.02):
                value = _vm_hwm_kib(proc.pid)
                if value is not None:
                    hwm[0] = max(hwm[0], value)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            done.set()
            timer.cancel()
        wall = time.perf_counter() - started
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if usage.ru_maxrss > inherited or not hwm[0]:
        peak, source = usage.ru_maxrss, "ru_maxrss"
    else:
        peak, source = hwm[0], "VmHWM sampled"
    return ChildRun(proc.returncode, wall, usage.ru_utime, usage.ru_stime, peak / 1024, source,  # KiB on Linux
                    out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))


def _proc_cpu(pid: int) -> float | None:
    """CPU seconds (user + sys) a running process has used so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the sandbox payer, in its own process -----------------------------------------------------------------

def _route(path: str) -> str:
    """A request path with resource ids folded: ``/fhir/ClaimResponse/{id}``, ``/ehr/fhir/Patient/{id}``."""
    for base in ("/ehr/fhir/", "/fhir/"):
        if path.startswith(base):
            parts = path[len(base):].split("/")
            if len(parts) > 1 and parts[0][:1].isupper() and not parts[1].startswith("$"):
                parts = [parts[0], "{id}"]
            return base + "/".join(parts[:2])
    return path


class CountRequests:
    """ASGI middleware: counts HTTP requests by method and route; answers ``GET /_bench/requests`` itself."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state  # SandboxServer reads ``app.state.sandbox``
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[MutableMapping[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] == "http":
            if scope["path"] == "/_bench/requests":
                with self._lock:
                    body = json.dumps(dict(self.counts)).encode()
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                return
            with self._lock:
                self.counts[f"{scope['method']} {_route(scope['path'])}"] += 1
        await self.app(scope, receive, send)


def serve_sandbox(pend_delay_scale: float) -> None:
    """The sandbox child: serve on a free loopback port, print the base URL, run until SIGTERM."""
    from fhir_pa_sandbox.config import SandboxConfig
    from fhir_pa_sandbox.server import SandboxServer

    server = SandboxServer(SandboxConfig(pend_delay_scale=pend_delay_scale), port=0)
    server.app = CountRequests(server.app)
    server.serve_forever(lambda s: print(s.base_url, flush=True))


@dataclass
class Sandbox:
    base: str
    pid: int

    @property
    def fhir_base(self) -> str:
        return f"{self.base}/fhir"

    def stats(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.base}/_sandbox/stats", timeout=60)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def requests(self) -> Counter[str]:
        answer = httpx.get(f"{self.base}/_bench/requests", timeout=60)
        answer.raise_for_status()
        return Counter(answer.json())

    def cpu(self) -> float | None:
        return _proc_cpu(self.pid)


@contextmanager
def sandbox_process(folder: Path) -> Iterator[Sandbox]:
    log = (folder / "sandbox.log").open("wb")
    proc = subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "benchmarks.batch_bench", "--serve-sandbox", str(PEND_DELAY_SCALE)],
        stdout=subprocess.PIPE, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("http://"):
            raise BenchError(f"the sandbox did not start; see {folder / 'sandbox.log'}")
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{line}/fhir/metadata", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise BenchError("the sandbox does not answer") from None
                time.sleep(0.1)
        yield Sandbox(line, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# --- the baseline child: the same bytes, raw httpx ---------------------------------------------------------

def request_bodies(db: sqlite3.Connection) -> Iterator[bytes]:
    """Every PAS request body the batch stored, in the order they were created (read as the posts go)."""
    for row in db.execute("select request_body from requests where kind = 'submit' order by created_at, id"):
        yield bytes(row[0])


async def post_all(url: str, bodies: Iterator[bytes], token: str, concurrency: int) -> tuple[Counter[int], int]:
    """POST every body with ``concurrency`` workers on one AsyncClient; the status counts and bytes sent."""
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json",
               "Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    statuses: Counter[int] = Counter()
    sent = [0]
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        async def worker() -> None:
            for body in bodies:
                sent[0] += len(body)
                answer = await http.post(url, content=body, headers=headers)
                statuses[answer.status_code] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses, sent[0]


def baseline_child(state: Path, fhir_base: str, concurrency: int) -> None:
    """The baseline child: POST every stored body, print what happened as JSON."""
    token = os.environ["BATCH_BENCH_TOKEN"]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        statuses, sent = asyncio.run(post_all(f"{fhir_base}/Claim/$submit", request_bodies(db), token,
                                              concurrency))
    cpu1, wall1 = time.process_time(), time.perf_counter()
    print(json.dumps({"posted": sum(statuses.values()), "bytes": sent,
                      "statuses": {str(k): v for k, v in statuses.items()},
                      "post_cpu": cpu1 - cpu0, "post_wall": wall1 - wall0}))


# --- the parent ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Client:
    client_id: str
    key_path: Path
    key: Any  # fhir_pa.auth.keys.SigningKey
    ehr_token: str


def register_client(sandbox: Sandbox, folder: Path) -> Client:
    from fhir_pa.auth.keys import generate_key, public_jwks, write_key_pair
    from fhir_pa.config import PAS_SCOPES

    key = generate_key("ES384")
    private_path, _ = write_key_pair(key, folder / "keys")
    httpx.post(f"{sandbox.base}/_sandbox/clients", json={"client_id": CLIENT_ID, "jwks": public_jwks(key),
                                                         "scopes": list(PAS_SCOPES)}).raise_for_status()
    answer = httpx.post(f"{sandbox.base}/_sandbox/ehr-token", json={"scopes": ["user/*.rs"], "lifetime": 86_400})
    answer.raise_for_status()
    return Client(CLIENT_ID, private_path, key, answer.json()["access_token"])


def pas_token(sandbox: Sandbox, client: Client) -> str:
    """A plain SMART Backend Services token request (client_credentials + private_key_jwt), outside the timing."""
    from fhir_pa.auth.assertion import client_assertion

    endpoint = f"{sandbox.base}/auth/token"
    assertion = client_assertion(client.key, client_id=client.client_id, audience=endpoint)
    answer = httpx.post(endpoint, data={
        "grant_type": "client_credentials", "scope": "system/Claim.c",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion})
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def batch_command(sandbox: Sandbox, client: Client, orders: Path, state: Path, concurrency: int) -> list[str]:
    return [*FHIR_PA, "batch", str(orders), "--payer", sandbox.fhir_base, "--client-id", client.client_id,
            "--key", str(client.key_path), "--state", str(state), "--crd", f"{sandbox.base}/crd/cds-services",
            "--ehr", f"{sandbox.base}/ehr/fhir", "--ehr-token", client.ehr_token, "--no-progress", "--json",
            *POLL_OPTIONS, "-c", str(concurrency)]


def shown(cmd: list[str], client: Client) -> str:
    return " ".join("$EHR_TOKEN" if part == client.ehr_token else part for part in cmd)


def write_one_order(path: Path, prefix: str) -> Path:
    """A 1-order file for the start-up cost: an approved order through CRD and PAS (no DTR, no tracking)."""
    from fhir_pa_sandbox.batch_orders import sample_order

    order = sample_order(0, "72148", prefix=prefix, expedited=False, with_ehr=True)
    path.write_text(json.dumps(order, separators=(",", ":")) + "\n", encoding="utf-8")
    return path


def check_batch(run: ChildRun, state: Path, orders: int, what: str) -> dict[str, Any]:
    """The batch finished: exit 0, every order settled, no error; returns its --json summary."""
    if run.returncode != 0:
        raise BenchError(f"{what}: fhir-pa batch exited {run.returncode}: {run.stderr.strip()[-2000:]}")
    try:
        summary: dict[str, Any] = json.loads(run.stdout)
    except ValueError:
        raise BenchError(f"{what}: the --json summary is not JSON: {run.stdout[:500]!r}") from None
    outcomes: dict[str, int] = summary["outcomes"]
    if summary["total"] != orders or summary["open"]:
        raise BenchError(f"{what}: {summary['total']} orders in the summary, {summary['open']} still open")
    unsettled = {o: n for o, n in outcomes.items() if n and o not in SETTLED}
    if unsettled:
        raise BenchError(f"{what}: orders ended unsettled or in error: {unsettled}; "
                         f"error codes {summary.get('error_codes')}")
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        items = Counter(f"{status}/{outcome}" for status, outcome in
                        db.execute("select status, outcome from batch_items"))
    if sum(items.values()) != orders or any(not key.startswith("done/") or key[5:] not in SETTLED for key in items):
        raise BenchError(f"{what}: the run state disagrees: {dict(items)}")
    return summary


def ledger_identifiers(state: Path) -> list[str]:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute(
            "select bundle_identifier from requests where kind = 'submit' and submitted_at is not null")]


def check_decided_once(identifiers: list[str], before: dict[str, Any], after: dict[str, Any]) -> None:
    """The sandbox decided each identifier of the ledger exactly once, and saw no other new identifier."""
    seen = after["by_identifier"]
    new = set(seen) - set(before["by_identifier"])
    missing = [i for i in identifiers if i not in seen]
    if missing:
        raise BenchError(f"{len(missing)} ledger request(s) never reached the sandbox, e.g. {missing[:3]}")
    other = [(i, seen[i]["decided"]) for i in identifiers if seen[i]["decided"] != 1]
    if other:
        raise BenchError(f"{len(other)} request(s) decided other than once, e.g. {other[:3]}")
    extra = new - set(identifiers)
    if extra:
        raise BenchError(f"the sandbox saw {len(extra)} request identifier(s) the ledger does not hold")


def check_duplicates(identifiers: list[str], before: dict[str, Any], after: dict[str, Any]) -> None:
    """Every baseline post was answered as a duplicate: one more duplicate per identifier, no new decision."""
    b, a = before["by_identifier"], after["by_identifier"]
    wrong = [i for i in identifiers if a[i]["decided"] != 1 or a[i]["duplicates"] != b[i]["duplicates"] + 1]
    if wrong:
        raise BenchError(f"{len(wrong)} baseline post(s) not answered as one duplicate, e.g. "
                         f"{[(i, b[i], a[i]) for i in wrong[:2]]}")
    if a.keys() - b.keys():
        raise BenchError("the baseline created request identifiers at the sandbox")


def ledger_counts(state: Path) -> dict[str, Any]:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        hooks = Counter({str(h): int(n) for h, n in db.execute("select hook, count(*) from hook_calls group by hook")})
        exchanges = Counter({str(k): int(n) for k, n in
                             db.execute("select kind, count(*) from exchanges group by kind")})
        requests = int(db.execute("select count(*) from requests").fetchone()[0])
    return {"hook_calls": dict(hooks), "exchanges": dict(exchanges), "requests": requests}


def delta(after: dict[str, Any], before: dict[str, Any], names: tuple[str, ...]) -> dict[str, int]:
    return {name: int(after.get(name, 0)) - int(before.get(name, 0)) for name in names}


def _min_cpu(runs: list[ChildRun]) -> ChildRun:
    return min(runs, key=lambda r: r.cpu)


def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from fhir_pa_sandbox.batch_orders import write_sample_orders

    n: int = args.orders
    concurrency: int = args.concurrency
    with sandbox_process(folder) as sandbox:
        client = register_client(sandbox, folder)
        orders = write_sample_orders(folder / "orders.ndjson", n, prefix="bench", seed=args.seed)

        # Fixed costs: imports alone (--help), then the whole command on a 1-order file (twice; the cheaper).
        help_run = run_child([*FHIR_PA, "batch", "--help"], folder=folder, name="help")
        if help_run.returncode != 0:
            raise BenchError(f"fhir-pa batch --help exited {help_run.returncode}")
        startup_runs: list[ChildRun] = []
        for i in range(2):
            one = write_one_order(folder / f"one-{i}.ndjson", prefix=f"startup{i}")
            state = folder / f"one-{i}.sqlite"
            startup_run = run_child(batch_command(sandbox, client, one, state, concurrency), folder=folder,
                                    name=f"one-{i}")
            check_batch(startup_run, state, 1, "1-order start-up run")
            startup_runs.append(startup_run)
        startup = _min_cpu(startup_runs)

        # The full flow.
        state = folder / "state.sqlite"
        cmd = batch_command(sandbox, client, orders, state, concurrency)
        print(f"batch_bench: {n} orders, -c {concurrency}: {shown(cmd, client)}", file=sys.stderr, flush=True)
        stats0, http0, sandbox_cpu0 = sandbox.stats(), sandbox.requests(), sandbox.cpu()
        full = run_child(cmd, folder=folder, name="batch", timeout=args.timeout)
        stats1, http1, sandbox_cpu1 = sandbox.stats(), sandbox.requests(), sandbox.cpu()
        print(f"batch_bench: the batch ran {full.wall:.1f} s wall, {full.cpu:.1f} s CPU, peak RSS "
              f"{full.maxrss_mb:.0f} MB, exit {full.returncode}; checking it", file=sys.stderr, flush=True)
        summary = check_batch(full, state, n, "the batch")
        identifiers = ledger_identifiers(state)
        if len(identifiers) != summary["submitted"]:
            raise BenchError(f"{len(identifiers)} PAS requests in the ledger, {summary['submitted']} orders submitted")
        check_decided_once(identifiers, stats0, stats1)

        # The baseline: the same bytes, raw httpx, same concurrency; token fetched beforehand.
        env = {**os.environ, "BATCH_BENCH_TOKEN": pas_token(sandbox, client)}
        base_cmd = [sys.executable, "-m", "benchmarks.batch_bench", "--baseline-child", str(state),
                    "--fhir-base", sandbox.fhir_base, "--concurrency", str(concurrency)]
        base_startup_runs = [run_child([*base_cmd[:4], str(folder / f"one-{i}.sqlite"), *base_cmd[5:]],
                                       folder=folder, name=f"baseline-one-{i}", env=env) for i in range(2)]
        stats2, sandbox_cpu2 = sandbox.stats(), sandbox.cpu()
        baseline = run_child(base_cmd, folder=folder, name="baseline", env=env, timeout=args.timeout)
        stats3, sandbox_cpu3 = sandbox.stats(), sandbox.cpu()
        for run in (*base_startup_runs, baseline):
            if run.returncode != 0:
                raise BenchError(f"the baseline child exited {run.returncode}: {run.stderr.strip()[-2000:]}")
        base_report: dict[str, Any] = json.loads(baseline.stdout)
        if base_report["posted"] != len(identifiers) or set(base_report["statuses"]) != {"200"}:
            raise BenchError(f"baseline: {base_report['posted']} posts for {len(identifiers)} requests, "
                             f"statuses {base_report['statuses']}")
        check_duplicates(identifiers, stats2, stats3)
        base_startup = _min_cpu(base_startup_runs)

        flow_http = Counter({k: v for k, v in (http1 - http0).items() if " /_sandbox/" not in k})
        self_calls = stats1.get("crd_ehr_reads", 0) - stats0.get("crd_ehr_reads", 0)  # the sandbox reading itself
        client_http = sum(flow_http.values()) - self_calls

    def per_order(seconds: float, count: int = n) -> float:
        return seconds / count * 1000 if count else float("nan")

    def marginal(total: ChildRun, one: ChildRun, count: int) -> float:
        return (total.cpu - one.cpu) / (count - 1) * 1000 if count > 1 else float("nan")

    posts = len(identifiers)
    figures: dict[str, Any] = {
        "orders": n,
        "concurrency": concurrency,
        "outcomes": {k: v for k, v in summary["outcomes"].items() if v},
        "pas_requests": posts,
        "full_flow": {
            "wall_s": round(full.wall, 2),
            "batch_duration_s": round(summary["duration_seconds"], 2),
            "orders_per_s": round(n / full.wall, 1),
            "cpu_s": round(full.cpu, 2),
            "user_s": round(full.user, 2),
            "sys_s": round(full.sys, 2),
            "cpu_ms_per_order": round(per_order(full.cpu), 3),
            "cpu_ms_per_order_minus_startup": round(marginal(full, startup, n), 3),
            "peak_rss_mb": round(full.maxrss_mb, 1),
            "peak_rss_source": full.maxrss_source,
            "decision_seconds": summary["decision_seconds"]["all"],
        },
        "startup": {
            "help_cpu_s": round(help_run.cpu, 3),
            "help_wall_s": round(help_run.wall, 3),
            "help_peak_rss_mb": round(help_run.maxrss_mb, 1),
            "help_peak_rss_source": help_run.maxrss_source,
            "one_order_cpu_s": round(startup.cpu, 3),
            "one_order_wall_s": round(startup.wall, 3),
            "one_order_peak_rss_mb": round(startup.maxrss_mb, 1),
            "one_order_peak_rss_source": startup.maxrss_source,
            "baseline_one_post_cpu_s": round(base_startup.cpu, 3),
            "baseline_one_post_peak_rss_mb": round(base_startup.maxrss_mb, 1),
        },
        "baseline": {
            "posts": posts,
            "answered_as": "duplicates (200, the stored decision)",
            "wall_s": round(baseline.wall, 2),
            "post_wall_s": round(base_report["post_wall"], 2),
            "posts_per_s": round(posts / base_report["post_wall"], 1),
            "cpu_s": round(baseline.cpu, 2),
            "post_cpu_s": round(base_report["post_cpu"], 2),
            # Per order: the posts of N orders over N orders (orders that needed no PAS request cost nothing here).
            "cpu_ms_per_order": round(per_order(baseline.cpu), 3),
            "cpu_ms_per_order_minus_startup": round(marginal(baseline, base_startup, posts) * posts / n, 3),
            "cpu_ms_per_post": round(per_order(baseline.cpu, posts), 3),
            "cpu_ms_per_post_minus_startup": round(marginal(baseline, base_startup, posts), 3),
            "peak_rss_mb": round(baseline.maxrss_mb, 1),
            "peak_rss_source": baseline.maxrss_source,
            "request_kb_mean": round(base_report["bytes"] / max(posts, 1) / 1024, 1),
        },
        "http": {
            "client_requests": client_http,
            "client_requests_per_order": round(client_http / n, 2),
            "by_route": dict(sorted(flow_http.items(), key=lambda kv: -kv[1])),
            "sandbox_counters": delta(stats1, stats0, FLOW_COUNTERS),
            "ledger": ledger_counts(state),
        },
        "sandbox_cpu_s": {
            "full_flow": round(sandbox_cpu1 - sandbox_cpu0, 2) if sandbox_cpu0 is not None and sandbox_cpu1 else None,
            "baseline": round(sandbox_cpu3 - sandbox_cpu2, 2) if sandbox_cpu2 is not None and sandbox_cpu3 else None,
        },
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "command": shown(cmd, client),
    }
    f, b = figures["full_flow"], figures["baseline"]
    figures["ratios"] = {
        "cpu_per_order": round(f["cpu_ms_per_order"] / b["cpu_ms_per_order"], 2),
        "cpu_per_order_minus_startup": round(f["cpu_ms_per_order_minus_startup"]
                                             / b["cpu_ms_per_order_minus_startup"], 2),
        "peak_rss": round(f["peak_rss_mb"] / b["peak_rss_mb"], 2),
        "wall": round(f["wall_s"] / b["wall_s"], 2),
    }
    if args.profile is not None:
        figures["profile"] = profile_pass(args, folder)
    return figures


def profile_pass(args: argparse.Namespace, folder: Path) -> str:
    """A separate batch of the same size under cProfile (its figures are not the measured ones)."""
    from fhir_pa_sandbox.batch_orders import write_sample_orders

    out = Path(args.profile).resolve()
    with sandbox_process(folder) as sandbox:
        client = register_client(sandbox, folder)
        orders = write_sample_orders(folder / "orders-profile.ndjson", args.orders, prefix="prof", seed=args.seed)
        state = folder / "state-profile.sqlite"
        cmd = batch_command(sandbox, client, orders, state, args.concurrency)
        cmd = [sys.executable, "-m", "cProfile", "-o", str(out), *cmd[1:]]
        run = run_child(cmd, folder=folder, name="profile", timeout=args.timeout)
        check_batch(run, state, args.orders, "the profiled batch")
    return str(out)


def print_table(fig: dict[str, Any]) -> None:
    f, b, s, r, h = fig["full_flow"], fig["baseline"], fig["startup"], fig["ratios"], fig["http"]
    mix = ", ".join(f"{k} {v}" for k, v in fig["outcomes"].items())
    lines = [
        f"fhir-pa batch: {fig['orders']} orders, concurrency {fig['concurrency']}, python {fig['python']}, "
        f"{fig['cpus']} CPUs",
        f"outcomes: {mix}",
        f"PAS requests submitted: {fig['pas_requests']} (the baseline posts these same bytes)",
        "",
        f"{'':34}{'full flow':>14}{'raw httpx':>14}{'ratio':>9}",
        f"{'orders (baseline: PAS posts)':34}{fig['orders']:>14}{b['posts']:>14}",
        f"{'orders/s (baseline: posts/s)':34}{f['orders_per_s']:>14}{b['posts_per_s']:>14}",
        f"{'wall, whole child (s)':34}{f['wall_s']:>14}{b['wall_s']:>14}{r['wall']:>9}",
        f"{'client CPU total (s)':34}{f['cpu_s']:>14}{b['cpu_s']:>14}",
        f"{'client CPU per order, raw (ms)':34}{f['cpu_ms_per_order']:>14}{b['cpu_ms_per_order']:>14}"
        f"{r['cpu_per_order']:>9}",
        f"{'  minus start-up (ms)':34}{f['cpu_ms_per_order_minus_startup']:>14}"
        f"{b['cpu_ms_per_order_minus_startup']:>14}{r['cpu_per_order_minus_startup']:>9}",
        f"{'peak RSS (MB)':34}{f['peak_rss_mb']:>14}{b['peak_rss_mb']:>14}{r['peak_rss']:>9}",
        f"{'sandbox CPU during the phase (s)':34}{fig['sandbox_cpu_s']['full_flow']!s:>14}"
        f"{fig['sandbox_cpu_s']['baseline']!s:>14}",
        "",
        f"start-up: `fhir-pa batch --help` {s['help_cpu_s']} s CPU, {s['help_peak_rss_mb']} MB; "
        f"1-order batch {s['one_order_cpu_s']} s CPU ({s['one_order_wall_s']} s wall), "
        f"{s['one_order_peak_rss_mb']} MB; "
        f"baseline child with 1 post {s['baseline_one_post_cpu_s']} s CPU, {s['baseline_one_post_peak_rss_mb']} MB",
        "  (minus start-up = (cpu(N) - cpu(1 order)) / (N - 1)); peak RSS from "
        f"{f['peak_rss_source']} (full flow), {b['peak_rss_source']} (baseline)",
        f"batch's own duration {f['batch_duration_s']} s; decision seconds p50 {f['decision_seconds']['p50']}, "
        f"p90 {f['decision_seconds']['p90']}, max {f['decision_seconds']['max']}",
        f"baseline per PAS post: {b['cpu_ms_per_post']} ms CPU raw, {b['cpu_ms_per_post_minus_startup']} ms minus "
        f"start-up; posting alone (in-process) {b['post_wall_s']} s wall, {b['post_cpu_s']} s CPU; "
        f"mean body {b['request_kb_mean']} KiB; all answered as {b['answered_as']}",
        "",
        f"HTTP requests the full flow made: {h['client_requests']} ({h['client_requests_per_order']} per order)",
    ]
    lines += [f"  {count:>8}  {count / fig['orders']:>6.2f}/order  {route}" for route, count in h["by_route"].items()]
    counters = ", ".join(f"{k} {v}" for k, v in h["sandbox_counters"].items() if v)
    ledger = h["ledger"]
    lines += [f"sandbox counters: {counters}",
              f"ledger: {ledger['requests']} requests, hook_calls {ledger['hook_calls']}, "
              f"exchanges {ledger['exchanges']}"]
    if "profile" in fig:
        lines.append(f"profile of a separate run: {fig['profile']}")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=10_000, help="orders in the batch (default 10000)")
    parser.add_argument("--concurrency", "-c", type=int, default=16, help="batch -c and baseline concurrency")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic orders")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before a child is killed")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--profile", metavar="FILE", help="afterwards, run the batch again under cProfile into FILE")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)")
    parser.add_argument("--serve-sandbox", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--baseline-child", help=argparse.SUPPRESS)
    parser.add_argument("--fhir-base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandbox is not None:
        serve_sandbox(args.serve_sandbox)
        return
    if args.baseline_child is not None:
        baseline_child(Path(args.baseline_child), args.fhir_base, args.concurrency)
        return
    if args.orders < 2:
        parser.error("--orders must be at least 2")
    if args.keep:
        folder = Path(args.keep).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        figures = measure(args, folder)
    else:
        with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
            figures = measure(args, Path(tmp))
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_table(figures)


if __name__ == "__main__":
    main()

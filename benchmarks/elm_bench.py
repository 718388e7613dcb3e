"""ELM evaluation cost: our engine versus the reference JavaScript engine, same packages, same patients.

*Warm* is one patient evaluated against already-loaded, already-compiled libraries (the steady state of
a DTR client filling many forms); *cold* is a fresh process doing everything (start-up, load, compile,
evaluate, print). The oracle half copies ``../shared/tools/elm-oracle`` to a temp dir and runs
``npm install`` there; it is skipped with a message when node/npm are missing. Run:
``.venv/bin/python benchmarks/elm_bench.py [--n 20]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fhir_pa.dtr.elm import ElmEngine, load_sources, parse_now, read_bundle

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIX = SHARED / "fixtures" / "dtr"
ORACLE = SHARED / "tools" / "elm-oracle"

# name -> (package, patient bundle, {param: "Type/id"}, now)
CASES: dict[str, tuple[str, str, dict[str, str], str]] = {
    "rad-pat015": ("packages/rad-package-bundle.testkit.json", "patients/pat015-bundle.testkit.json",
                   {"device_request": "DeviceRequest/devreqe0470"}, "2024-04-07T12:00:00.000Z"),
    "hot-handmade": ("packages/hot-package-output-params.crd-ri.json", "patients/hot-handmade-bundle.json",
                     {"device_request": "DeviceRequest/dr1"}, "2026-01-15T10:00:00.000-05:00"),
    "dinner-pat015": ("packages/dinner-static-package-bundle.testkit.json", "patients/pat015-bundle.testkit.json",
                      {}, "2024-04-07T12:00:00.000Z"),
}

# A warm-loop harness for the reference engine: load once, evaluate N times, print ms per evaluation.
# It mirrors run-elm.js's loading (base64 Library ELM, ValueSet expansions, main = not included, no FHIRHelpers).
_JS_WARM = r"""
const fs = require('fs');
const cql = require('cql-execution');
const fhir = require('cql-exec-fhir');
const [pkgPath, bundlePath, paramsJson, nowIso, n] = process.argv.slice(2);
const pkg = JSON.parse(fs.readFileSync(pkgPath, 'utf8'));
const bundle = JSON.parse(fs.readFileSync(bundlePath, 'utf8'));
const elms = {};
const vs = {};
function flat(cs, out) {
  for (const c of cs || []) {
    if (c.code != null) out.push({code: c.code, system: c.system, version: c.version});
    flat(c.contains, out);
  }
  return out;
}
function walk(o) {
  if (!o || typeof o !== 'object') return;
  if (Array.isArray(o)) return o.forEach(walk);
  if (o.resourceType === 'Library') {
    for (const c of o.content || []) {
      if (c.contentType !== 'application/elm+json' || !c.data) continue;
      const e = JSON.parse(Buffer.from(c.data, 'base64').toString('utf8'));
      elms[`${e.library.identifier.id}|${e.library.identifier.version || ''}`] = e;
    }
    return;
  }
  if (o.resourceType === 'ValueSet') {
    const codes = flat((o.expansion || {}).contains, []);
    if (!codes.length) {
      for (const inc of (o.compose || {}).include || []) {
        for (const c of inc.concept || []) codes.push({code: c.code, system: inc.system});
      }
    }
    for (const k of [o.url, o.id].filter(Boolean)) vs[k] = {[o.version || '']: codes};
    return;
  }
  for (const v of Object.values(o)) walk(v);
}
walk(pkg);
const all = Object.values(elms);
const inc = new Set();
all.forEach(e => ((e.library.includes || {}).def || []).forEach(d => inc.add(d.path)));
const mains = all.filter(e => !inc.has(e.library.identifier.id) && e.library.identifier.id !== 'FHIRHelpers');
const byRef = {};
for (const en of bundle.entry || []) {
  if (en.resource) byRef[`${en.resource.resourceType}/${en.resource.id}`] = en.resource;
}
const params = JSON.parse(paramsJson);
const now = cql.DateTime.parse(nowIso);
const prepared = mains.map(m => {
  const using = ((m.library.usings || {}).def || []).find(d => d.localIdentifier === 'FHIR');
  const v = using.version === '4.0.0' ? 'FHIRv400' : 'FHIRv401';
  const w = fhir.FHIRWrapper[v]();
  const declared = new Set(((m.library.parameters || {}).def || []).map(d => d.name));
  const p = {};
  for (const [k, ref] of Object.entries(params)) if (declared.has(k)) p[k] = w.wrap(byRef[ref]);
  const lib = new cql.Library(m, new cql.Repository(elms));
  return {v, ex: new cql.Executor(lib, new cql.CodeService(vs), p)};
});
async function once() {
  for (const {v, ex} of prepared) {
    const src = fhir.PatientSource[v]();
    src.loadBundles([bundle]);
    await ex.exec(src, now);
  }
}
(async () => {
  await once();
  await once();
  const t = process.hrtime.bigint();
  for (let i = 0; i < +n; i++) await once();
  process.stdout.write(String(Number(process.hrtime.bigint() - t) / 1e6 / +n));
})();
"""


def _ours_warm(case: str, n: int) -> float:
    package, patient, params, now = CASES[case]
    engine = ElmEngine(load_sources(FIX / package))
    bundle, when = read_bundle(FIX / patient), parse_now(now)
    for _ in range(2):
        engine.evaluate(bundle, now=when, parameters=params)
    t = time.perf_counter()
    for _ in range(n):
        engine.evaluate(bundle, now=when, parameters=params)
    return (time.perf_counter() - t) * 1000 / n


def _cold(argv: list[str], cwd: Path | None = None, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)  # noqa: S603 - our CLI or node, fixed args
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _ours_cold(case: str) -> float:
    package, patient, params, now = CASES[case]
    args = ["dtr", "eval", str(FIX / package), "--patient", str(FIX / patient), "--now", now, "--json"]
    for k, v in params.items():
        args += ["--param", f"{k}={v}"]
    code = "import sys; from fhir_pa.cli.main import main; sys.argv = ['fhir-pa'] + sys.argv[1:]; main()"
    return _cold([sys.executable, "-c", code, *args])


def _oracle_dir() -> Path | None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        print("oracle: skipped (node/npm not on PATH)")
        return None
    if not ORACLE.exists():
        print(f"oracle: skipped ({ORACLE} not found)")
        return None
    work = Path(tempfile.mkdtemp(prefix="elm-oracle-"))
    shutil.copytree(ORACLE, work, dirs_exist_ok=True)
    done = subprocess.run(["npm", "install", "--no-audit", "--no-fund"],  # noqa: S607 - npm from PATH, checked above
                          cwd=work, capture_output=True, text=True)
    if done.returncode != 0:
        print("oracle: skipped (npm install failed: " + (done.stderr.strip().splitlines() or ["?"])[-1] + ")")
        return None
    (work / "bench-warm.js").write_text(_JS_WARM, encoding="utf-8")
    return work


def _oracle_warm(work: Path, case: str, n: int) -> float:
    package, patient, params, now = CASES[case]
    argv = ["node", "bench-warm.js", str(FIX / package), str(FIX / patient), json.dumps(params), now, str(n)]
    out = subprocess.run(argv, cwd=work, check=True, capture_output=True, text=True)  # noqa: S603 - fixed args
    return float(out.stdout)


def _oracle_cold(work: Path, case: str) -> float:
    package, patient, params, now = CASES[case]
    argv = ["node", "run-elm.js", str(FIX / package), str(FIX / patient), "--now", now]
    for k, v in params.items():
        argv += ["--param", f"{k}={v}"]
    return _cold(argv, cwd=work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="warm evaluations per case (default 20)")
    args = parser.parse_args()
    if not FIX.exists():
        print(f"fixtures not found at {FIX}; nothing to measure")
        return 1
    work = _oracle_dir()
    print(f"{'case':<15} {'ours warm':>10} {'oracle warm':>12} {'ratio':>7}   {'ours cold':>10} {'oracle cold':>12} "
          f"{'ratio':>7}")
    for case in CASES:
        ow, oc = _ours_warm(case, args.n), _ours_cold(case)
        if work is None:
            print(f"{case:<15} {ow:>8.2f}ms {'-':>12} {'-':>7}   {oc:>8.0f}ms {'-':>12} {'-':>7}")
            continue
        jw, jc = _oracle_warm(work, case, args.n), _oracle_cold(work, case)
        print(f"{case:<15} {ow:>8.2f}ms {jw:>10.2f}ms {jw / ow:>6.1f}x   {oc:>8.0f}ms {jc:>10.0f}ms {jc / oc:>6.1f}x")
    print("ratio = oracle time / our time (>1: we are faster). warm = per patient, libraries loaded and compiled;"
          " cold = whole process, median of 3.")
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Our ``fhir-pa dtr eval --json`` output equals the reference engine's, define by define.

Cases are the shared oracle outputs (RAD/pat015, HOT/hand-made, dinner/pat015) and our own edge-case
patients under ``tests/data/dtr`` (oracle outputs stored beside them; see the README there).
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fhir_pa.cli import errors as cli_errors
from fhir_pa.cli.main import app
from fhir_pa.dtr.elm import ElmEngine, ElmError, load_sources, parse_now, read_bundle, report
from tests.conftest import FIXTURES, fixture_path

DATA = Path(__file__).resolve().parents[2] / "data" / "dtr"
RAD = "packages/rad-package-bundle.testkit.json"
HOT = "packages/hot-package-output-params.crd-ri.json"
DINNER = "packages/dinner-static-package-bundle.testkit.json"
PAT015 = "patients/pat015-bundle.testkit.json"

# name -> (package, patient (shared fixture or tests/data file), params, now, oracle file)
CASES: dict[str, tuple[str, str, list[str], str, Path]] = {
    "rad-pat015": (RAD, PAT015, ["device_request=DeviceRequest/devreqe0470"], "2024-04-07T12:00:00.000Z",
                   FIXTURES / "dtr" / "oracle-output" / "rad-pat015.oracle.json"),
    "hot-handmade": (HOT, "patients/hot-handmade-bundle.json", ["device_request=DeviceRequest/dr1"],
                     "2026-01-15T10:00:00.000-05:00", FIXTURES / "dtr" / "oracle-output" / "hot-handmade.oracle.json"),
    "dinner-static-pat015": (DINNER, PAT015, [], "2024-04-07T12:00:00.000Z",
                             FIXTURES / "dtr" / "oracle-output" / "dinner-static-pat015.oracle.json"),
    "empty-chart": (RAD, str(DATA / "empty-chart.json"), ["device_request=DeviceRequest/dr1"],
                    "2024-04-07T12:00:00.000Z", DATA / "empty-chart.rad.oracle.json"),
    "two-official-names": (RAD, str(DATA / "two-official-names.json"), [], "2024-04-07T12:00:00.000Z",
                           DATA / "two-official-names.rad.oracle.json"),
    "hot-edges": (HOT, str(DATA / "hot-edges.json"), ["device_request=DeviceRequest/dr1"],
                  "2026-01-15T10:00:00.000-05:00", DATA / "hot-edges.hot.oracle.json"),
    "elements": (str(DATA / "elements"), str(DATA / "elements-bundle.json"), [], "2024-01-01T00:00:00.000Z",
                 DATA / "elements-bundle.elements.oracle.json"),
    "semantics": (str(DATA / "semantics"), str(DATA / "semantics-bundle.json"), [], "2026-01-15T10:00:00.000-05:00",
                  DATA / "semantics-bundle.semantics.oracle.json"),
    "sort-offsets": (HOT, str(DATA / "sort-offsets.json"), ["device_request=DeviceRequest/dr1"],
                     "2026-01-15T10:00:00.000-05:00", DATA / "sort-offsets.hot.oracle.json"),
    # required-binding code labels: the 4.0.0 and 4.0.1 model infos name them differently
    "bound-codes-400": (str(DATA / "bound-codes-400"), str(DATA / "bound-codes-bundle.json"), [],
                        "2024-01-01T00:00:00.000Z", DATA / "bound-codes-bundle.bc400.oracle.json"),
    "bound-codes-401": (str(DATA / "bound-codes-401"), str(DATA / "bound-codes-bundle.json"), [],
                        "2024-01-01T00:00:00.000Z", DATA / "bound-codes-bundle.bc401.oracle.json"),
}
#: Deliberate differences: the reference engine sorts DateTimes by their *text* (JavaScript ``<`` on objects
#: without ``valueOf``), so with mixed offsets CDS ``MostRecent`` picks 01:00Z over 23:00-05:00 (= 04:00Z).
#: We sort chronologically, as CQL requires. Value = what we return instead.
_LATEST = {"@type": "DateTime", "value": "2026-01-10T23:00:00-05:00"}
DIVERGENCES: dict[tuple[str, str, str], Any] = {
    ("sort-offsets", "HomeOxygenTherapyPrepopulation|0.1.0", "OxygenSatExerciseDate"): _LATEST,
    ("sort-offsets", "HomeOxygenTherapyPrepopulation|0.1.0", "BloodGasTestDate"): _LATEST,
}
#: Libraries the reference engine could not evaluate (its output holds an "error"); checked separately.
ERRORS = {("two-official-names", "BasicPatientInfoPrepopulation|0.2.0"): "Name"}


def _patient(ref: str) -> Path:
    """A shared fixture (relative path) or one of our files under tests/data (absolute path)."""
    return Path(ref) if ref.startswith("/") else fixture_path("dtr", ref)


def _define_params() -> list[Any]:
    params: list[Any] = []
    for case, (*_, oracle) in CASES.items():
        if not oracle.exists():
            params.append(pytest.param(case, "", "", id=f"{case}-missing",
                                       marks=pytest.mark.skip(reason="shared fixtures not available")))
            continue
        doc = json.loads(oracle.read_text(encoding="utf-8"))
        for lib, body in doc["libraries"].items():
            if "error" in body:
                continue
            for define in body["results"]:
                params.append(pytest.param(case, lib, define, id=f"{case}-{lib.split('|')[0]}-{define}"))
    return params


@cache
def _cli_output(case: str) -> dict[str, Any]:
    """Run ``fhir-pa dtr eval --json`` once per case, in-process (the CLI's own error wrapper included)."""
    package, patient, params, now, _ = CASES[case]
    argv = ["fhir-pa", "dtr", "eval", str(_patient(package)), "--patient", str(_patient(patient)),
            "--now", now, "--json"]
    for p in params:
        argv += ["--param", p]
    import contextlib
    import io

    out = io.StringIO()
    old = sys.argv
    sys.argv = argv
    try:
        with contextlib.redirect_stdout(out):
            code = cli_errors.run(app)
    finally:
        sys.argv = old
    assert code == 0, f"dtr eval failed for {case}"
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


@cache
def _engine_output(case: str) -> dict[str, Any]:
    package, patient, params, now, _ = CASES[case]
    engine = ElmEngine(load_sources(_patient(package)))
    res = engine.evaluate(read_bundle(_patient(patient)), now=now,
                          parameters=dict(p.split("=", 1) for p in params), keep_going=True)
    return report(parse_now(now), res)


def _output(case: str) -> dict[str, Any]:
    return _engine_output(case) if any(c == case for c, _ in ERRORS) else _cli_output(case)


@pytest.mark.parametrize(("case", "library", "define"), _define_params())
def test_define_matches_oracle(case: str, library: str, define: str) -> None:
    expected = json.loads(CASES[case][4].read_text(encoding="utf-8"))["libraries"][library]["results"][define]
    got = _output(case)["libraries"][library]["results"]
    assert define in got
    ours = DIVERGENCES.get((case, library, define))
    if ours is not None:
        assert got[define] == ours and got[define] != expected
        return
    assert got[define] == expected


@pytest.mark.parametrize("case", [c for c in CASES if not any(c == e for e, _ in ERRORS)])
def test_whole_document_matches_oracle(case: str) -> None:
    oracle = CASES[case][4]
    if not oracle.exists():
        pytest.skip("oracle output not available")
    _patient(CASES[case][0])
    expected = json.loads(oracle.read_text(encoding="utf-8"))
    for (c, lib, define), ours in DIVERGENCES.items():
        if c == case:
            expected["libraries"][lib]["results"][define] = ours
    assert _output(case) == expected
    assert list(_output(case)["libraries"]) == list(expected["libraries"])  # same libraries, same order
    for lib, body in expected["libraries"].items():
        assert list(_output(case)["libraries"][lib]["results"]) == list(body["results"])  # define order


@pytest.mark.parametrize(("case", "library"), list(ERRORS))
def test_oracle_errors_are_elm_errors(case: str, library: str) -> None:
    package, patient, _params, now, oracle = CASES[case]
    assert "error" in json.loads(oracle.read_text(encoding="utf-8"))["libraries"][library]
    engine = ElmEngine(load_sources(fixture_path("dtr", package)))
    with pytest.raises(ElmError) as info:
        engine.evaluate(read_bundle(_patient(patient)), now=now, libraries=[library.split("|")[0]])
    assert info.value.define == ERRORS[(case, library)]
    assert info.value.library == library.split("|")[0]
    assert "singleton" in info.value.message
    assert "Oster" not in str(info.value) and "official" not in str(info.value)  # no patient values

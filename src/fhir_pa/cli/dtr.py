"""``fhir-pa dtr ...``: DTR commands (evaluate a payer's ELM, populate a questionnaire package)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fhir_pa.errors import InputError

dtr_app = typer.Typer(help="DTR: run a payer's documentation logic (ELM, FHIRPath) against a chart.",
                      no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(dtr_app, name="dtr")


def _parse_params(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, ref = item.partition("=")
        if not sep or not name or not ref:
            raise InputError("--param must be NAME=Type/id", path=f"--param {item}")
        out[name] = ref
    return out


@dtr_app.command("eval")
def eval_command(
    source: Annotated[Path, typer.Argument(help="Questionnaire package (Bundle/Parameters), Library, ELM file "
                                                "or directory.")],
    patient: Annotated[Path, typer.Option("--patient", help="Patient Bundle (JSON).")],
    param: Annotated[list[str] | None, typer.Option("--param", help="NAME=Type/id: bind a CQL parameter to a "
                                                                    "resource of the bundle (repeatable).")] = None,
    now: Annotated[str | None, typer.Option("--now", help="Evaluation date-time (ISO, with offset).")] = None,
    library: Annotated[list[str] | None, typer.Option("--library", help="Evaluate only this library "
                                                                        "(repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reference runner's JSON document.")] = False,
) -> None:
    """Evaluate every define of the payer's ELM for one patient."""
    from fhir_pa.dtr.elm import ElmEngine, encode, load_sources, parse_now, read_bundle, report

    when = parse_now(now)
    engine = ElmEngine(load_sources(source))
    results = engine.evaluate(read_bundle(patient), now=when, parameters=_parse_params(param or []),
                              libraries=library)
    doc = report(when, results)
    if as_json:
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    typer.echo(f"executionDateTime {doc['executionDateTime']}")
    for result in results:
        typer.echo(f"{result.key}  (patient {result.patient})")
        for name, value in result.results.items():
            typer.echo(f"  {name}: {json.dumps(encode(value), ensure_ascii=False)}")


@dtr_app.command("populate")
def populate_command(
    package: Annotated[Path, typer.Argument(help="Questionnaire package Bundle or $questionnaire-package output "
                                                 "Parameters.")],
    patient: Annotated[Path, typer.Option("--patient", help="Patient Bundle (JSON).")],
    param: Annotated[list[str] | None, typer.Option("--param", help="NAME=Type/id: a launch-context resource "
                                                                    "(CQL parameter / %NAME; repeatable).")] = None,
    now: Annotated[str | None, typer.Option("--now", help="Evaluation date-time (ISO, with offset).")] = None,
    version: Annotated[str, typer.Option("--version", help="DTR version of the emitted origin codes: 2.2 or "
                                                           "2.0.1.")] = "2.2",
    author: Annotated[str | None, typer.Option("--author", help="Current user, e.g. Practitioner/p1.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Pretty-print the QuestionnaireResponse JSON.")] = False,
) -> None:
    """Pre-populate every questionnaire of a DTR package for one patient; errors go to stderr, one per line."""
    from fhir_pa.dtr.elm import read_bundle
    from fhir_pa.dtr.prepopulate import populate, read_packages

    if version not in ("2.2", "2.0.1"):
        raise InputError("--version must be 2.2 or 2.0.1", path="--version")
    try:
        doc = json.loads(package.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the package ({exc.__class__.__name__})", path=str(package)) from exc
    if not isinstance(doc, dict):
        raise InputError("the package must be a JSON object", path=str(package))
    chart = read_bundle(patient)
    launch = _parse_params(param or [])
    results = [populate(pkg, chart, launch=launch, now=now, author=author,
                        version="2.2" if version == "2.2" else "2.0.1") for pkg in read_packages(doc)]
    for result in results:
        for issue in (*result.errors, *result.warnings):
            typer.echo(f"{result.questionnaire} {issue.one_line()}", err=True)
    if len(results) == 1:
        out = results[0].response
    else:
        out = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r.response} for r in results]}
    typer.echo(json.dumps(out, indent=2 if as_json else None, ensure_ascii=False))

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

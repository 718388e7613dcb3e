"""How the CLI reports failures: one line on stderr, a non-zero exit code, never a traceback."""

from __future__ import annotations

import sys

import typer
from click.exceptions import Abort as ClickAbort
from click.exceptions import ClickException, Exit
from typer.exceptions import TyperException

from fhir_pa.errors import FhirPaError

#: Exit codes by error kind; anything else that is a FhirPaError exits 1.
EXIT_CODES: dict[str, int] = {
    "input": 2,
    "profile": 3,
    "configuration": 4,
    "key-file": 4,
    "rejected": 5,
    "invalid-response": 6,
    "transport": 7,
    "unavailable": 7,
    "auth": 8,
    "token": 8,
    "discovery": 8,
    "ledger": 9,
    "elm": 10,
}


def warn(message: str) -> None:
    print(f"fhir-pa: warning: {message}", file=sys.stderr)


def fail(error: FhirPaError) -> int:
    """Print ``error`` as one line and return its exit code."""
    print(f"fhir-pa: {error.code} error: {error.one_line()}", file=sys.stderr)
    return EXIT_CODES.get(error.code, 1)


def run(app: typer.Typer) -> int:
    """Run ``app`` in standalone-off mode so library errors reach us rather than Click."""
    try:
        # Without standalone mode Click catches Exit itself and returns its code: pass it on.
        code = app(standalone_mode=False)
    except FhirPaError as exc:
        return fail(exc)
    except (ClickException, TyperException) as exc:
        # Typer >= 0.29 vendors Click, so usage errors arrive as TyperException subclasses.
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print(f"fhir-pa: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    except (Exit, typer.Exit) as exc:
        return int(exc.exit_code)
    except (ClickAbort, typer.Abort):
        print("fhir-pa: aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("fhir-pa: interrupted", file=sys.stderr)
        return 130
    return code if isinstance(code, int) else 0

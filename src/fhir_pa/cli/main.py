"""The ``fhir-pa`` command: one Typer app, with sub-commands registered by the modules beside it.

Plugins (the sandbox payer among them) add commands through the ``fhir_pa.cli`` entry-point group, so this
package never imports them by name.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from fhir_pa.cli import errors as cli_errors

app = typer.Typer(
    name="fhir-pa",
    help="Electronic prior authorization over FHIR R4 (Da Vinci CRD, DTR, PAS).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
pas_app = typer.Typer(help="PAS: build, check and explain prior-auth requests and responses.", no_args_is_help=True)
keys_app = typer.Typer(help="Signing keys for SMART Backend Services and CDS Hooks.", no_args_is_help=True)
app.add_typer(pas_app, name="pas")
app.add_typer(keys_app, name="keys")


def _register_builtin() -> None:
    from fhir_pa.cli import amend, crd, crd_check, dtr, explain, keys, submit, track

    crd.register(app)
    crd_check.register(crd.crd_app)
    dtr.register(app)
    keys.register(keys_app)
    explain.register(pas_app)
    submit.register(app)
    track.register(app)
    amend.register(app)


def _register_plugins() -> None:
    for ep in entry_points(group="fhir_pa.cli"):
        try:
            register = ep.load()
        except ImportError as exc:  # an optional extra is not installed: its commands are simply absent
            cli_errors.warn(f"plugin {ep.name!r} not loaded: {exc}")
            continue
        register(app)


_register_builtin()
_register_plugins()


def main() -> None:
    """Console-script entry point: run the app, turning library errors into one-line messages."""
    sys.exit(cli_errors.run(app))


if __name__ == "__main__":
    main()

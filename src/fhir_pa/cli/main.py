"""The ``fhir-pa`` command: one Typer app, with sub-commands registered by the modules beside it.

Plugins (the sandbox payer among them) add commands through the ``fhir_pa.cli`` entry-point group, so this
package never imports them by name.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from fhir_pa.cli import errors as cli_errors


def build_app(only: str | None = None) -> typer.Typer:
    """The command tree; ``only`` builds just that command group (a faster start, no plugins)."""
    root = typer.Typer(
        name="fhir-pa",
        help="Electronic prior authorization over FHIR R4 (Da Vinci CRD, DTR, PAS).",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    if only == "dtr":
        from fhir_pa.cli import dtr

        dtr.register(root)
        return root
    pas_app = typer.Typer(help="PAS: build, check and explain prior-auth requests and responses.",
                          no_args_is_help=True)
    keys_app = typer.Typer(help="Signing keys for SMART Backend Services and CDS Hooks.", no_args_is_help=True)
    root.add_typer(pas_app, name="pas")
    root.add_typer(keys_app, name="keys")
    from fhir_pa.cli import amend, batch, crd, crd_check, dtr, explain, keys, submit, track

    crd.register(root)
    crd_check.register(crd.crd_app)
    dtr.register(root)
    keys.register(keys_app)
    explain.register(pas_app)
    submit.register(root)
    track.register(root)
    amend.register(root)
    batch.register(root)
    from fhir_pa.cli import metrics

    metrics.register(root)
    _register_plugins(root)
    return root


def _register_plugins(root: typer.Typer) -> None:
    for ep in entry_points(group="fhir_pa.cli"):
        try:
            register = ep.load()
        except ImportError as exc:  # an optional extra is not installed: its commands are simply absent
            cli_errors.warn(f"plugin {ep.name!r} not loaded: {exc}")
            continue
        register(root)


#: Commands whose group builds alone: they need neither the HTTP clients nor the plugins at start-up.
_LIGHT_GROUPS = frozenset({"dtr"})


def __getattr__(name: str) -> typer.Typer:
    """``app``, the full command tree, is built on first use (tests and embedders import it)."""
    if name == "app":
        built = build_app()
        globals()["app"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console-script entry point: run the app, turning library errors into one-line messages."""
    first = sys.argv[1] if len(sys.argv) > 1 else None
    sys.exit(cli_errors.run(build_app(first if first in _LIGHT_GROUPS else None)))


if __name__ == "__main__":
    main()

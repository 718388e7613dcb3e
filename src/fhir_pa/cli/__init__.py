"""The ``fhir-pa`` command line. ``fhir_pa.cli.main.app`` is the Typer application."""

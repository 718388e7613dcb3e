"""The ELM engine's error: which library, which define, where in the ELM — never patient values."""

from __future__ import annotations

from fhir_pa.errors import FhirPaError


class ElmError(FhirPaError):
    """ELM could not be loaded, compiled or evaluated."""

    code = "elm"

    def __init__(self, message: str, *, library: str | None = None, define: str | None = None,
                 locator: str | None = None, path: str | None = None) -> None:
        self.library = library
        self.define = define
        self.locator = locator
        where = ".".join(p for p in (library, define) if p)
        if locator:
            where = f"{where}@{locator}" if where else locator
        super().__init__(message, path=path or where or None)

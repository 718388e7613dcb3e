"""Pin FHIRPath's ``now()``/``today()``/``timeOfDay()`` to a chosen moment for one evaluation.

fhirpathpy reads the system clock at the start of every evaluation. Prepopulation is run "as of" a moment
(``--now``), like the CQL it sits beside, so its FHIRPath must see the same moment. The pin is a context variable:
each thread or task sees only its own, and evaluations outside a pin keep the real clock.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from fhirpathpy.engine.invocations import constants as _constants

_PINNED: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("fhir_pa_fhirpath_now", default=None)


class _PinnableSystemTime(_constants.SystemTime):
    def reset(self) -> None:
        self.expressionExecutionDateTime = _PINNED.get() or datetime.now()


# The one SystemTime object fhirpathpy's date functions read; changing its class keeps every reference to it.
_constants.systemtime.__class__ = _PinnableSystemTime


@contextmanager
def fhirpath_now(moment: datetime | None) -> Iterator[None]:
    """Within the block, FHIRPath evaluations in this thread/task take ``moment`` as now (None: the real clock)."""
    token = _PINNED.set(moment)
    try:
        yield
    finally:
        _PINNED.reset(token)


__all__ = ["fhirpath_now"]

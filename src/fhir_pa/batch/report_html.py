"""``report.html``: one self-contained page (inline CSS and SVG, no script, no external resource).

The page is rendered by jinja2 with autoescaping on, from ``templates/report.html.j2`` shipped inside the
package. Both jinja2 and matplotlib are the ``report`` extra and are imported only when a page is rendered,
so importing this module (or the CLI) costs nothing; without them a
:class:`~fhir_pa.errors.ConfigurationError` says what to install.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

from fhir_pa.batch.report_files import _write_atomic
from fhir_pa.batch.rows import BatchRow
from fhir_pa.batch.summary import (
    PERCENTILE_METHOD,
    BatchSummary,
    DecisionTimes,
    format_seconds,
    format_share,
)
from fhir_pa.errors import ConfigurationError

TEMPLATE = "report.html.j2"
#: Orders listed in the page by default; the rest are in ``orders.csv``.
MAX_ORDERS = 1000


def write_html(rows: Sequence[BatchRow], summary: BatchSummary, path: str | os.PathLike[str], *,
               title: str = "fhir-pa batch report", max_orders: int | None = MAX_ORDERS) -> None:
    """Write the HTML report: summary tables, the two charts and (up to ``max_orders``) the orders."""
    _write_atomic(Path(path), render_html(rows, summary, title=title, max_orders=max_orders))


def render_html(rows: Sequence[BatchRow], summary: BatchSummary, *, title: str = "fhir-pa batch report",
                max_orders: int | None = MAX_ORDERS) -> str:
    """The page as text (see :func:`write_html`)."""
    jinja2 = _report_dependencies()
    from markupsafe import Markup

    from fhir_pa.batch.charts import OUTCOME_COLORS, render_charts

    mix, clocks = render_charts(rows, summary)
    shown = rows if max_orders is None else rows[:max(0, max_orders)]
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                     lstrip_blocks=True, keep_trailing_newline=True)
    template = environment.from_string(_template_text())
    return str(template.render(
        title=title,
        run=_run(summary),
        outcomes=[{"name": outcome, "count": count, "share": format_share(summary.share(outcome)),
                   "color": OUTCOME_COLORS[outcome]} for outcome, count in summary.outcomes],
        times=[_times("all", summary.decision_times),
               *(_times(urgency, times) for urgency, times in summary.decision_times_by_urgency)],
        method=PERCENTILE_METHOD,
        clocks=[{"urgency": urgency, "limit": "72 h" if urgency == "expedited" else "7 days",
                 "on_time": counts.on_time, "late": counts.late, "open": counts.open, "overdue": counts.overdue,
                 "total": counts.total} for urgency, counts in summary.clocks],
        denial_reasons=summary.denial_reasons,
        error_codes=summary.error_codes,
        # Our own matplotlib output, holding only outcome names, counts and durations: safe to inline as is.
        charts={"mix": Markup(mix), "clocks": Markup(clocks)},  # noqa: S704
        orders=[_order(row, summary.now) for row in shown],
        orders_shown=len(shown),
        orders_total=len(rows),
    ))


def _report_dependencies() -> ModuleType:
    try:
        import jinja2
        import matplotlib  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "a dependency"
        raise ConfigurationError(f"the HTML batch report needs matplotlib and jinja2 ({missing} is not "
                                 f"installed): install fhir-pa[report]") from exc
    return jinja2


def _template_text() -> str:
    return (resources.files("fhir_pa") / "batch" / "templates" / TEMPLATE).read_text(encoding="utf-8")


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


def _run(summary: BatchSummary) -> dict[str, Any]:
    rate = summary.orders_per_second
    return {"total": summary.total, "submitted": summary.submitted, "now": _when(summary.now),
            "started_at": _when(summary.started_at), "finished_at": _when(summary.finished_at),
            "duration": format_seconds(summary.duration_seconds), "rate": f"{rate:.2f}" if rate is not None else "",
            "total_share": format_share(1.0 if summary.total else 0.0)}


def _times(label: str, times: DecisionTimes) -> dict[str, Any]:
    return {"label": label, "count": times.count, "p50": format_seconds(times.p50),
            "p90": format_seconds(times.p90), "p99": format_seconds(times.p99), "max": format_seconds(times.max)}


def _order(row: BatchRow, now: datetime) -> dict[str, Any]:
    took = row.decision_seconds
    return {"order_id": row.order_id, "outcome": row.outcome, "urgency": row.urgency,
            "submitted_at": _when(row.submitted_at), "decided_at": _when(row.decided_at),
            "decision_time": format_seconds(took) if took is not None else "", "clock": row.clock(now) or "",
            "channel": row.channel or "", "preauth_ref": row.preauth_ref or "",
            "denial_reasons": "; ".join(row.denial_reasons), "error_code": row.error_code or "",
            "error": row.error or ""}


__all__ = ["MAX_ORDERS", "render_html", "write_html"]

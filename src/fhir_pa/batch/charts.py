"""The two charts of the HTML report, drawn offline by matplotlib as SVG text ready to inline in a page.

matplotlib is imported only when a chart is drawn (it is the ``report`` extra and slow to import). No pyplot
and no global backend switch: each chart is a bare :class:`~matplotlib.figure.Figure` on an Agg canvas,
saved as SVG inside an ``rc_context``, so the caller's matplotlib state is left as it was. The output is
reproducible: no date or creator metadata, a fixed hash salt for matplotlib's generated ids, and every id
prefixed per chart so two charts can share one HTML document. Text stays text (``svg.fonttype = 'none'``):
smaller, selectable, and no duplicated glyph definitions between charts.

Charts show outcomes, counts and durations only, never order ids or anything else from the orders.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fhir_pa.batch.rows import OUTCOMES, BatchRow
from fhir_pa.batch.summary import (
    URGENCIES,
    BatchSummary,
    Urgency,
    format_share,
    payer_decision_seconds,
    urgency_of,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The CMS decision deadlines, in seconds (CMS-0057-F; see ``fhir_pa.ledger.clock``).
DEADLINES: dict[Urgency, float] = {"expedited": 72 * 3600.0, "standard": 7 * 86400.0}

OUTCOME_COLORS = {
    "approved": "#2e7d32", "partial": "#7cb342", "modified": "#00897b", "denied": "#c62828",
    "pended": "#f9a825", "cancelled": "#757575", "no-auth-needed": "#1e88e5", "needs-documentation": "#8e24aa",
    "error": "#4e342e",
}
URGENCY_COLORS: dict[Urgency, str] = {"expedited": "#d84315", "standard": "#1565c0"}

_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
#: Log-axis ticks: seconds and their labels.
_TICKS = ((0.01, "10 ms"), (0.1, "100 ms"), (1.0, "1 s"), (60.0, "1 min"), (3600.0, "1 h"), (86400.0, "1 d"),
          (DEADLINES["expedited"], "72 h"), (DEADLINES["standard"], "7 d"), (30 * 86400.0, "30 d"),
          (365 * 86400.0, "1 y"))


def render_charts(rows: Sequence[BatchRow], summary: BatchSummary) -> tuple[str, str]:
    """The decision-mix chart and the decision-times-against-the-clocks chart, as inline SVG markup."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "fhir-pa-batch-report", "font.size": 9.0,
                                "axes.spines.top": False, "axes.spines.right": False,
                                "axes.titlelocation": "left"}):
        mix = _svg(_decision_mix(summary), "mix", "Decision mix: orders per outcome")
        clocks = _svg(_decision_clocks(rows, summary), "clock",
                      "Decision times against the CMS 72 hour and 7 day clocks, per urgency")
    return mix, clocks


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _decision_mix(summary: BatchSummary) -> Figure:
    from matplotlib.ticker import MaxNLocator

    figure = _figure(7.0, 3.4)
    ax = figure.add_subplot()
    counts = [summary.count(outcome) for outcome in OUTCOMES]
    bars = ax.barh(range(len(OUTCOMES)), counts, color=[OUTCOME_COLORS[outcome] for outcome in OUTCOMES],
                   height=0.7)
    ax.set_yticks(range(len(OUTCOMES)), labels=list(OUTCOMES))
    ax.invert_yaxis()
    ax.bar_label(bars, labels=[f"{count} ({format_share(summary.share(outcome))})" if count else "0"
                               for outcome, count in zip(OUTCOMES, counts, strict=True)], padding=3)
    ax.set_xlim(0, max(counts) * 1.25 if any(counts) else 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("orders")
    ax.set_title(f"Decision mix ({summary.total} orders)")
    if not summary.total:
        ax.text(0.5, 0.5, "no orders", transform=ax.transAxes, ha="center", va="center", color="#757575")
    return figure


def _decision_clocks(rows: Sequence[BatchRow], summary: BatchSummary) -> Figure:
    from matplotlib.ticker import FixedLocator, NullLocator, PercentFormatter

    seconds: dict[Urgency, list[float]] = {urgency: [] for urgency in URGENCIES}
    for row in rows:
        took = payer_decision_seconds(row)
        if took is not None:
            seconds[urgency_of(row)].append(took)
    everything = [value for values in seconds.values() for value in values]
    positive = [value for value in everything if value > 0]
    # A log axis needs a floor: half the fastest decision, kept between 10 ms and 1 s (faster ones sit on it).
    low = min(1.0, max(0.01, min(positive) / 2)) if positive else 1.0
    high = max(DEADLINES["standard"] * 2, max(everything, default=0.0) * 1.5)

    figure = _figure(8.0, 3.6)
    ax = figure.add_subplot()
    for urgency in URGENCIES:
        values = sorted(max(value, low) for value in seconds[urgency])
        # The share of the decided plus the still open requests of this urgency (cancelled and failed ones left
        # out), so the curve stays below 100% while some are open.
        population = len(values) + summary.clock_for(urgency).undecided
        if values:
            xs = [low, *values, high]
            ys = [0.0, *(index / population for index in range(1, len(values) + 1)), len(values) / population]
            ax.step(xs, ys, where="post", color=URGENCY_COLORS[urgency], linewidth=1.6,
                    label=f"{urgency}: {len(values)} of {population} decided")
    for urgency in URGENCIES:
        limit = "72 h" if urgency == "expedited" else "7 d"
        ax.axvline(DEADLINES[urgency], color=URGENCY_COLORS[urgency], linestyle="--" if urgency == "expedited"
                   else ":", linewidth=1.2, label=f"{limit} deadline ({urgency})")
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ticks = [(value, label) for value, label in _TICKS if low <= value <= high]
    ax.xaxis.set_major_locator(FixedLocator([value for value, _ in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([label for _, label in ticks])
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("time from submission to decision (log scale)")
    ax.set_ylabel("share of requests decided")
    ax.grid(True, axis="both", color="#e0e0e0", linewidth=0.6)
    ax.set_axisbelow(True)
    figure.legend(loc="outside right upper", frameon=False, fontsize=8)
    figure.suptitle("Decision times against the CMS clocks", x=0.02, ha="left", fontsize=10)
    ax.set_title(_open_note(summary), fontsize=8, color="#424242")
    if not everything:
        ax.text(0.5, 0.5, "no decisions yet", transform=ax.transAxes, ha="center", va="center", color="#757575")
    return figure


def _open_note(summary: BatchSummary) -> str:
    parts = [f"{summary.clock_for(urgency).undecided} {urgency} ({summary.clock_for(urgency).overdue} overdue)"
             for urgency in URGENCIES]
    return "still open at report time: " + ", ".join(parts)


_ID = re.compile(r'\bid="')


def _svg(figure: Figure, prefix: str, label: str) -> str:
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata=_NO_METADATA)
    text = out.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE: the SVG goes inside HTML
    text = _ID.sub(f'id="{prefix}-', text)
    text = text.replace("url(#", f"url(#{prefix}-").replace('href="#', f'href="#{prefix}-')
    text = text.replace("<svg ", f'<svg role="img" aria-label="{html.escape(label)}" ', 1)
    return text.strip()


__all__ = ["DEADLINES", "OUTCOME_COLORS", "URGENCY_COLORS", "render_charts"]

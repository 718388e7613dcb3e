"""The batch report: summary numbers, the console table, orders.csv, summary.json and the self-contained HTML."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from fhir_pa.batch.report_files import (
    CSV_COLUMNS,
    csv_text,
    row_from_dict,
    write_csv,
    write_json,
    write_reports,
)
from fhir_pa.batch.report_html import render_html, write_html
from fhir_pa.batch.rows import OUTCOMES, BatchRow
from fhir_pa.batch.summary import BatchSummary, ClockCounts, DecisionTimes, summarize
from fhir_pa.errors import ConfigurationError

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=8)
STANDARD = timedelta(days=7)
EXPEDITED = timedelta(hours=72)
EVIL = "<script>alert('x')</script>"


def _decided(order_id: str, outcome: str, after: timedelta, *, urgency: str = "standard",
             reasons: tuple[str, ...] = (), submitted: datetime = T0) -> BatchRow:
    limit = EXPEDITED if urgency == "expedited" else STANDARD
    return BatchRow(order_id=order_id, outcome=outcome, urgency=urgency, state="decided",  # type: ignore[arg-type]
                    record_id=f"rec-{order_id}", preauth_ref=f"PA-{order_id}", submitted_at=submitted,
                    decided_at=submitted + after, deadline_at=submitted + limit, channel="submit",
                    pa_needed="auth-needed", denial_reasons=reasons, attempts=1)


def _rows() -> list[BatchRow]:
    return [
        _decided("a1", "approved", timedelta(hours=2)),                                   # on time, 7200 s
        _decided("a2", "approved", timedelta(hours=1), urgency="expedited"),              # on time, 3600 s
        _decided("p1", "partial", timedelta(days=1), reasons=("not medically necessary",)),
        _decided("m1", "modified", STANDARD + timedelta(hours=1), reasons=("quantity exceeds limit",)),  # late
        _decided("d1", "denied", timedelta(hours=80), urgency="expedited",                 # late, 288000 s
                 reasons=("not medically necessary", "out of network")),
        _decided("d2", "denied", timedelta(seconds=30), reasons=("out of network", "out of network")),
        BatchRow(order_id="pe1", outcome="pended", state="pended", submitted_at=T0 + timedelta(days=2),
                 deadline_at=T0 + timedelta(days=9), channel="poll", attempts=1),           # open
        BatchRow(order_id="pe2", outcome="pended", urgency="expedited", state="pended", submitted_at=T0,
                 deadline_at=T0 + EXPEDITED, attempts=2),                                   # overdue
        _decided("c1", "cancelled", timedelta(minutes=10)),                               # on time, not timed
        BatchRow(order_id="n1", outcome="no-auth-needed", pa_needed="no-auth"),
        BatchRow(order_id="h1", outcome="needs-documentation", urgency="expedited", documentation="held"),
        BatchRow(order_id="e1", outcome="error", error_code="transport", error="payer unreachable", attempts=3),
        BatchRow(order_id="e2", outcome="error", urgency="expedited", error="<b>bad</b> answer"),
        BatchRow(order_id="e3", outcome="error", error_code="transport", error="timed out"),
        _decided(EVIL, "approved", timedelta(minutes=45), reasons=()),                    # on time, 2700 s
    ]


def _summary(rows: list[BatchRow]) -> BatchSummary:
    return summarize(rows, now=NOW, started_at=T0, finished_at=T0 + timedelta(seconds=20))


# --- summary ----------------------------------------------------------------------------------------------


def test_summary_numbers_are_exact() -> None:
    summary = _summary(_rows())
    assert summary.total == 15
    assert [outcome for outcome, _ in summary.outcomes] == list(OUTCOMES)
    assert dict(summary.outcomes) == {"approved": 3, "partial": 1, "modified": 1, "denied": 2, "pended": 2,
                                      "cancelled": 1, "no-auth-needed": 1, "needs-documentation": 1, "error": 3}
    assert summary.share("approved") == pytest.approx(0.2)
    assert summary.orders_per_second == pytest.approx(0.75)
    assert summary.submitted == 10
    # inclusive quantiles over [30, 2700, 3600, 7200, 86400, 288000, 608400]; the cancelled order is not timed
    assert summary.decision_times == DecisionTimes(7, 7200.0, 416160.0, 589176.0, 608400.0)
    assert summary.times_for("standard") == DecisionTimes(5, 7200.0, 399600.0, 587520.0, 608400.0)
    assert summary.times_for("expedited") == DecisionTimes(2, 145800.0, 259560.0, 285156.0, 288000.0)
    assert summary.clock_for("standard") == ClockCounts(on_time=5, late=1, open=1, overdue=0)
    assert summary.clock_for("expedited") == ClockCounts(on_time=1, late=1, open=0, overdue=1)
    # once per order: d2's repeated reason counts once; ties in alphabetical order
    assert summary.denial_reasons == (("not medically necessary", 2), ("out of network", 2),
                                      ("quantity exceeds limit", 1))
    assert summary.error_codes == (("transport", 2), ("unknown", 1))


def test_summary_as_dict_is_json() -> None:
    summary = _summary(_rows())
    data = summary.as_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["outcomes"]["error"] == 3
    assert data["decision_seconds"]["expedited"]["p50"] == 145800.0
    assert data["clocks"]["expedited"] == {"on-time": 1, "late": 1, "open": 0, "overdue": 1, "not-started": 0}
    assert data["denial_reasons"][0] == {"reason": "not medically necessary", "count": 2}
    assert data["orders_per_second"] == pytest.approx(0.75)
    assert data["now"] == "2026-11-09T09:00:00+00:00"
    assert "inclusive" in data["decision_seconds"]["method"]


def test_empty_and_single_row_summaries() -> None:
    empty = summarize([], now=NOW, started_at=T0, finished_at=T0)
    assert empty.total == 0 and empty.orders_per_second is None
    assert empty.decision_times == DecisionTimes()
    assert all(count == 0 for _, count in empty.outcomes)
    assert empty.share("approved") == 0.0
    one = _summary([_decided("a", "approved", timedelta(minutes=5))])
    assert one.decision_times == DecisionTimes(1, 300.0, 300.0, 300.0, 300.0)


def test_print_summary_is_a_compact_deterministic_table() -> None:
    from fhir_pa.batch.summary import print_summary

    def text() -> str:
        console = Console(record=True, width=120, color_system=None)
        print_summary(console, _summary(_rows()))
        return console.export_text()

    out = text()
    assert out == text()
    assert "batch: 15 orders in 20.0 s, 0.75 orders/s" in out
    assert re.search(r"approved\s+│\s+3\s+│\s+20\.0%", out)
    assert re.search(r"total\s+│\s+15\s+│\s+100\.0%", out)
    assert "cancelled" in out and "needs-documentation" in out
    lines = out.rstrip("\n").splitlines()
    assert lines[-2] == ("decision times (n=7): p50 2.0 h, p90 4.8 d, p99 6.8 d, max 7.0 d; "
                         "expedited p50 1.7 d (n=2); standard p50 2.0 h (n=5)")
    assert lines[-1] == ("CMS clocks: expedited (72 h) 1 on time, 1 late, 0 open, 1 overdue; "
                         "standard (7 d) 5 on time, 1 late, 1 open, 0 overdue")


# --- files ------------------------------------------------------------------------------------------------


def test_csv_has_one_row_per_order(tmp_path: Path) -> None:
    rows = _rows()
    path = tmp_path / "orders.csv"
    write_csv(rows, path, now=NOW)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        read = {line["order_id"]: line for line in reader}
    assert list(read) == [row.order_id for row in rows]
    d1 = read["d1"]
    assert d1["outcome"] == "denied" and d1["urgency"] == "expedited"
    assert d1["submitted_at"] == "2026-11-01T09:00:00+00:00"
    assert d1["decided_at"] == "2026-11-04T17:00:00+00:00"
    assert d1["deadline_at"] == "2026-11-04T09:00:00+00:00"
    assert float(d1["decision_seconds"]) == 288000.0
    assert d1["clock"] == "late"
    assert d1["denial_reasons"] == "not medically necessary; out of network"
    assert read["pe1"]["clock"] == "open" and read["pe2"]["clock"] == "overdue"
    assert read["pe2"]["decision_seconds"] == "" and read["pe2"]["decided_at"] == ""
    e1 = read["e1"]
    assert (e1["clock"], e1["error_code"], e1["error"], e1["attempts"]) == ("", "transport", "payer unreachable", "3")
    assert read["h1"]["documentation"] == "held"
    assert read[EVIL]["clock"] == "on-time"


def test_json_round_trips(tmp_path: Path) -> None:
    rows = _rows()
    summary = _summary(rows)
    path = tmp_path / "summary.json"
    write_json(rows, summary, path)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["format"] == "fhir-pa-batch-report" and document["version"] == 1
    assert document["summary"] == summary.as_dict()
    assert [row_from_dict(order) for order in document["orders"]] == rows
    assert document["orders"][4]["clock"] == "late"
    assert document["orders"][4]["decision_seconds"] == 288000.0


# --- HTML -------------------------------------------------------------------------------------------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Page(HTMLParser):
    """Collects tags and resource references, and checks that every element is closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.starts: list[str] = []
        self.references: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def _attrs(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append(tag)
        self.references += [value or "" for name, value in attrs if name in {"src", "href", "xlink:href"}]


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert parser.stack == []
    return parser


def test_html_is_self_contained_with_two_charts(tmp_path: Path) -> None:
    rows = _rows()
    path = tmp_path / "report.html"
    write_html(rows, _summary(rows), path, title="Run <1> & co")
    page = path.read_text(encoding="utf-8")
    parsed = _parse(page)
    assert parsed.starts.count("svg") == 2 and page.count("<svg") == 2
    assert "script" not in parsed.starts
    assert all(reference.startswith("#") for reference in parsed.references)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)
    assert "url(http" not in page and "@import" not in page
    assert "<title>Run &lt;1&gt; &amp; co</title>" in page
    # the malicious order id and error text are shown, escaped
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert EVIL in "".join(parsed.text)
    # summary tables, the open-request note in the clock chart, no chart metadata
    assert "not medically necessary" in page and "transport" in page
    assert "still open at report time: 1 expedited (1 overdue), 1 standard (0 overdue)" in page
    assert "<metadata" not in page and "<dc:date" not in page
    # svg ids are per chart, so the two charts never clash in one document
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_html_is_reproducible() -> None:
    rows = _rows()
    assert render_html(rows, _summary(rows), title="t") == render_html(rows, _summary(rows), title="t")


@pytest.mark.parametrize("count", [0, 1])
def test_html_renders_empty_and_single_row_runs(count: int) -> None:
    rows = [_decided("only", "approved", timedelta(seconds=0))][:count]
    page = render_html(rows, summarize(rows, now=NOW, started_at=T0, finished_at=T0), title="small")
    _parse(page)
    assert page.count("<svg") == 2
    assert ("No orders." in page) is (count == 0)
    assert ("no decisions yet" in page) is (count == 0)


def test_html_lists_at_most_max_orders() -> None:
    rows = _rows()
    page = render_html(rows, _summary(rows), title="t", max_orders=2)
    assert "The first 2 of 15 orders" in page
    assert ">a2<" in page and ">p1<" not in page


def test_write_reports_writes_three_files(tmp_path: Path) -> None:
    rows = _rows()
    folder = tmp_path / "out" / "run-1"
    paths = write_reports(rows, _summary(rows), folder, title="t")
    assert paths == {"csv": folder / "orders.csv", "json": folder / "summary.json", "html": folder / "report.html"}
    assert sorted(item.name for item in folder.iterdir()) == ["orders.csv", "report.html", "summary.json"]


def test_missing_report_extra_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigurationError, match=r"fhir-pa\[report\]"):
        write_html([], summarize([], now=NOW, started_at=T0, finished_at=T0), tmp_path / "r.html", title="t")
    assert not (tmp_path / "r.html").exists()


def test_report_modules_do_not_import_matplotlib_or_jinja2() -> None:
    code = ("import sys, fhir_pa.batch.summary, fhir_pa.batch.report_files, fhir_pa.batch.report_html, "
            "fhir_pa.batch.charts; print(sorted({'matplotlib', 'jinja2', 'markupsafe'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_csv_text_cells_cannot_run_as_spreadsheet_formulas() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    rows = [BatchRow(order_id='=HYPERLINK("http://x","y")', outcome="denied", denial_reasons=("+SUM(A1)",),
                     attempts=2)]
    parsed = list(csv.DictReader(csv_text(rows, now=now).splitlines()))
    assert parsed[0]["order_id"] == "'=HYPERLINK(\"http://x\",\"y\")"
    assert parsed[0]["denial_reasons"] == "'+SUM(A1)"
    assert parsed[0]["attempts"] == "2"  # numbers stay numbers

"""The investigation report: one self-contained HTML file (inline CSS and SVG, no network fetches).

The model is plain data; ``render_report`` fills ``templates/report.html.j2`` through a jinja2
environment with autoescaping on for every value, so audit-log text (subjects, rule names, user agents)
can never inject markup. The timeline chart's geometry is computed here, the template only draws it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2

from mia_bridge.errors import ExportError
from mia_bridge.safe_files import write_text

SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low", "info")
SEVERITY_COLOURS: dict[str, str] = {
    "critical": "#8b0000",
    "high": "#d1342f",
    "medium": "#e08a00",
    "low": "#3b7dd8",
    "info": "#6b7280",
}
TEMPLATE_NAME = "report.html.j2"


@dataclass
class ReportFinding:
    """A finding with the evidence rows behind it (each row a dict keyed by ``columns``)."""

    severity: str
    title: str
    summary: str
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    category: str = ""


@dataclass
class TimelinePoint:
    when: datetime
    label: str
    severity: str = ""  # empty for ordinary records, a severity for findings
    count: int = 1  # records this point stands for (a bucket's records, counted as they were read)


@dataclass
class ReportStep:
    name: str
    status: str  # done / skipped / failed
    reason: str = ""


@dataclass
class EvidenceFile:
    path: str
    sha256: str
    size: int


@dataclass
class ReportTable:
    """An extra table (message-id lookups, leads): a title, a note, columns and rows."""

    title: str
    note: str
    columns: list[str]
    rows: list[dict[str, Any]]


@dataclass
class ReportModel:
    """Everything the report shows, in the order a responder reads it."""

    tenant: str
    generated_at: datetime
    period_start: datetime | None
    period_end: datetime | None
    verdict_level: str  # "compromised", "suspicious" or "no evidence"
    verdict_headline: str
    verdict_points: list[str] = field(default_factory=list)
    findings: list[ReportFinding] = field(default_factory=list)
    timeline: list[TimelinePoint] = field(default_factory=list)
    mailbox_columns: list[str] = field(default_factory=list)
    mailboxes: list[dict[str, Any]] = field(default_factory=list)
    exposed_message_ids: list[dict[str, Any]] = field(default_factory=list)
    steps: list[ReportStep] = field(default_factory=list)
    completeness: list[tuple[str, str]] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    evidence: list[EvidenceFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: list[ReportTable] = field(default_factory=list)
    redaction: str = ""  # one line: what this report (and the package's derived files) redact, or that they do not
    sharing: list[tuple[str, str]] = field(default_factory=list)  # (files, whether and how they may be shared)
    manifest_sha256: str = ""  # manifest.json's SHA-256 when the report was written (it lists every file before)


@dataclass(frozen=True)
class ChartBar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class ChartMarker:
    x: float
    y: float
    colour: str
    title: str


@dataclass(frozen=True)
class TimelineChart:
    width: int
    height: int
    baseline: float
    bars: list[ChartBar]
    markers: list[ChartMarker]
    ticks: list[tuple[float, str]]


_CHART_WIDTH = 900
_CHART_LEFT = 40
_CHART_RIGHT = 10
_BAR_AREA = 110  # height of the record-count bars
_MARKER_ROW = 28  # findings row above the bars
TIMELINE_BUCKETS = 60  # the bars (investigate.report_model.record_points counts records into them)


def build_timeline_chart(points: Sequence[TimelinePoint]) -> TimelineChart | None:
    """Bars: records per time bucket; markers: findings placed at their time, coloured by severity."""
    if not points:
        return None
    times = [p.when for p in points]
    start, end = min(times), max(times)
    span = max((end - start).total_seconds(), 60.0)
    plot_width = _CHART_WIDTH - _CHART_LEFT - _CHART_RIGHT
    top = 10 + _MARKER_ROW
    baseline = top + _BAR_AREA

    def x_of(when: datetime) -> float:
        return _CHART_LEFT + (when - start).total_seconds() / span * plot_width

    counts = [0] * TIMELINE_BUCKETS
    for point in points:
        if point.severity:
            continue
        index = min(int((point.when - start).total_seconds() / span * TIMELINE_BUCKETS), TIMELINE_BUCKETS - 1)
        counts[index] += point.count
    peak = max(counts) or 1
    bucket_width = plot_width / TIMELINE_BUCKETS
    bars = []
    for index, count in enumerate(counts):
        if not count:
            continue
        height = max(count / peak * _BAR_AREA, 1.5)
        bucket_start = start + timedelta(seconds=span * index / TIMELINE_BUCKETS)
        bars.append(
            ChartBar(
                x=round(_CHART_LEFT + index * bucket_width + 0.5, 1),
                y=round(baseline - height, 1),
                width=round(max(bucket_width - 1, 1), 1),
                height=round(height, 1),
                title=f"{count} records from {bucket_start:%Y-%m-%d %H:%M} UTC",
            )
        )
    markers = [
        ChartMarker(
            x=round(x_of(p.when), 1),
            y=10 + _MARKER_ROW / 2,
            colour=SEVERITY_COLOURS.get(p.severity, SEVERITY_COLOURS["info"]),
            title=f"{p.when:%Y-%m-%d %H:%M} UTC · {p.severity}: {p.label}",
        )
        for p in points
        if p.severity
    ]
    ticks = []
    for step in range(5):
        when = start + timedelta(seconds=span * step / 4)
        ticks.append((round(_CHART_LEFT + plot_width * step / 4, 1), f"{when:%Y-%m-%d %H:%M}"))
    return TimelineChart(_CHART_WIDTH, int(baseline + 30), baseline, bars, markers, ticks)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        # The templates ship inside the package (mia_bridge/templates; the top-level templates/ links there),
        # so an installed wheel renders the report from any folder.
        loader=jinja2.PackageLoader("mia_bridge", "templates"),
        autoescape=True,  # every value, whatever the template file name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = _format_utc
    return env


def _format_utc(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _sorted_findings(findings: Sequence[ReportFinding]) -> list[ReportFinding]:
    order = {name: index for index, name in enumerate(SEVERITIES)}
    return sorted(findings, key=lambda f: order.get(f.severity, len(SEVERITIES)))


def render_report(model: ReportModel) -> str:
    """The report as HTML text."""
    findings = _sorted_findings(model.findings)
    counts = {name: sum(1 for f in findings if f.severity == name) for name in SEVERITIES}
    try:
        template = _environment().get_template(TEMPLATE_NAME)
    except jinja2.TemplateNotFound as exc:
        raise ExportError(f"report template missing from the package: mia_bridge/templates/{TEMPLATE_NAME}") from exc
    return template.render(
        m=model,
        findings=findings,
        severity_counts=counts,
        colours=SEVERITY_COLOURS,
        chart=build_timeline_chart(model.timeline),
    )


def write_report(model: ReportModel, path: Path) -> Path:
    """Render and write the report; returns the path."""
    html = render_report(model)
    try:
        write_text(path, html)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write report: {exc.strerror or exc}", path=str(path)) from exc
    return path

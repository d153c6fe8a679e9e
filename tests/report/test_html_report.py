"""The HTML report: self-contained, escaped, and rendered by a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mia_bridge.report.html import (
    EvidenceFile,
    ReportFinding,
    ReportModel,
    ReportStep,
    TimelinePoint,
    build_timeline_chart,
    render_report,
    write_report,
)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _model() -> ReportModel:
    timeline = [TimelinePoint(T0 + timedelta(minutes=7 * i), "MailItemsAccessed") for i in range(40)]
    timeline.append(TimelinePoint(T0 + timedelta(hours=2), "Forwarding rule <script>", "high"))
    return ReportModel(
        tenant="contoso.onmicrosoft.com",
        generated_at=T0 + timedelta(days=1),
        period_start=T0 - timedelta(days=7),
        period_end=T0 + timedelta(days=1),
        verdict_level="compromised",
        verdict_headline="An attacker read 12 messages of victim@contoso.com from 203.0.113.66",
        verdict_points=["Inbox rule forwarding to evil@example.net", "App 'Mail Sync' consented"],
        findings=[
            ReportFinding(
                "low", "Benign-looking change", "Something minor.", ["Id"], [{"Id": "r-low"}]
            ),
            ReportFinding(
                "high",
                "Inbox rule forwards mail <b>outside</b>",
                "New-InboxRule created a forwarding rule.",
                ["CreationTime", "UserId", "ClientIP", "Parameters"],
                [{"CreationTime": "2026-03-01T10:00:00", "UserId": "victim@contoso.com", "ClientIP": "203.0.113.66",
                  "Parameters": "ForwardTo=evil@example.net <img src=x onerror=alert(1)>"}],
            ),
        ],
        timeline=timeline,
        mailbox_columns=["Mailbox", "Items read"],
        mailboxes=[{"Mailbox": "victim@contoso.com", "Items read": 12}],
        exposed_message_ids=[{"InternetMessageId": "<m1@contoso.com>", "Mailbox": "victim@contoso.com"}],
        steps=[ReportStep("Pre-flight", "done", "ingestion enabled"), ReportStep("License", "skipped", "no SKUs")],
        completeness=[("Records retrieved", "120"), ("Duplicates removed", "3")],
        gaps=["Window 2026-03-01 08:00–08:01 still at the cap"],
        evidence=[EvidenceFile("evidence/mia.jsonl", "ab" * 32, 1234)],
    )


def test_render_escapes_and_orders_by_severity() -> None:
    html = render_report(_model())
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Inbox rule forwards mail &lt;b&gt;outside&lt;/b&gt;" in html
    assert html.index("Inbox rule forwards") < html.index("Benign-looking change")
    assert html.index('id="verdict"') < html.index('id="findings"')
    assert "&lt;m1@contoso.com&gt;" in html
    # self-contained: no external fetches of any kind
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "<script" not in html
    assert "<svg" in html and "<circle" in html


def test_chart_geometry() -> None:
    chart = build_timeline_chart(_model().timeline)
    assert chart is not None
    assert sum(int(b.title.split()[0]) for b in chart.bars) == 40  # every ordinary record counted once
    assert len(chart.markers) == 1 and all(0 <= b.x <= chart.width for b in chart.bars)
    assert build_timeline_chart([]) is None


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if chromium is None:
        pytest.fail("chromium is not installed (apt-get install chromium); the report must be checked in a browser")
    report = write_report(_model(), tmp_path / "report.html")
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report-screenshot.png"
    screenshot.unlink(missing_ok=True)
    base = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600",
    ]  # fmt: skip
    dom = subprocess.run(
        [*base, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=90, check=False
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Verdict: compromised" in dom.stdout
    assert "An attacker read 12 messages of victim@contoso.com" in dom.stdout
    assert "Inbox rule forwards mail &lt;b&gt;outside&lt;/b&gt;" in dom.stdout
    assert 'class="finding"' in dom.stdout
    shot = subprocess.run(
        [*base, f"--screenshot={screenshot}", report.as_uri()], capture_output=True, text=True, timeout=90, check=False
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.exists() and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 10_000  # a blank page compresses to far less

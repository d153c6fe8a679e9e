"""One progress component for ``mia collect`` and ``mia investigate``: one documented ``--json`` vocabulary."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mia_bridge.cli.app import main
from mia_bridge.cli.commands.investigate import ConsoleUI
from mia_bridge.cli.console import Console, build_console
from mia_bridge.cli.progress import EVENTS, CollectionProgress, JsonEvents
from mia_bridge.collect.engine import Gap, QueryCounts, QueryResult
from mia_bridge.collect.query import AuditQuery
from mia_bridge.investigate.steps import StepOutcome, StepStatus

README = Path(__file__).resolve().parents[2] / "README.md"
START = datetime(2026, 10, 1, tzinfo=UTC)


def _console() -> tuple[Console, io.StringIO]:
    err = io.StringIO()
    return build_console(io.StringIO(), err, environ={}), err


def _result(gaps: int = 0) -> QueryResult:
    query = AuditQuery(name="ual", start=START, end=datetime(2026, 10, 2, tzinfo=UTC))
    gap = Gap(START, START, 5000, 5000)
    return QueryResult(query, Path("ual.jsonl"), QueryCounts(retrieved=12, unique=10), calls=3, retries=1,
                       windows=[], gaps=[gap] * gaps, resumed=False)


def _drive(progress: CollectionProgress) -> None:
    progress.query_started("ual", 86_400, 0)
    progress.window_done("ual", 43_200, 7, 2, 1)
    progress.window_done("ual", 43_200, 5, 1, 0)
    progress.query_finished("ual", _result(gaps=1))
    progress.close()


def conforms(lines: list[str]) -> list[dict[str, Any]]:
    """The JSON lines of a stderr, each checked against the documented vocabulary."""
    events = [json.loads(line) for line in lines if line.startswith("{")]
    for event in events:
        assert event["event"] in EVENTS, event
        assert list(event) == ["event", *EVENTS[event["event"]]], event
    return events


def test_json_progress_speaks_the_vocabulary() -> None:
    console, err = _console()
    _drive(CollectionProgress(console, as_json=True, detailed=True))
    events = conforms(err.getvalue().splitlines())
    assert [e["event"] for e in events] == ["query_started", "window_done", "window_done", "query_finished"]
    assert events[-1] == {"event": "query_finished", "query": "ual", "records": 10, "calls": 3, "retries": 1,
                          "gaps": 1}


def test_investigate_steps_and_notes_are_events_too() -> None:
    console, err = _console()
    ui = ConsoleUI(as_json=True, console=console)
    assert ui.progress is not None
    ui.progress.query_started("Search 1", 10, 0)
    ui.outcome(StepOutcome("Search 1", StepStatus.SKIPPED, "no licence", True, {"query": "q1"}))
    ui.note("limit: 5000 rows")
    events = conforms(err.getvalue().splitlines())
    assert [e["event"] for e in events] == ["query_started", "step", "note"]
    assert events[1]["status"] == "skipped" and events[2]["text"] == "limit: 5000 rows"
    assert all(line.startswith("{") for line in err.getvalue().splitlines())  # nothing but events on --json


def test_an_event_outside_the_vocabulary_is_refused() -> None:
    console, _ = _console()
    with pytest.raises(ValueError, match="not in the vocabulary"):
        JsonEvents(console).emit("search_started", search="ual")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        JsonEvents(console).emit("query_finished", query="ual", unique=3)


@pytest.mark.parametrize(("detailed", "columns"), [(True, ["records", "/s", "calls", "retries"]), (False, ["records"])])
def test_human_bars_on_a_non_terminal(detailed: bool, columns: list[str]) -> None:
    console, err = _console()
    _drive(CollectionProgress(console, detailed=detailed))
    text = err.getvalue()
    assert "{" not in text and "ual" in text and "100.0%" in text and "10 records" in text
    assert ("3 calls" in text and "1 retries" in text) is detailed
    for column in columns:
        assert column in text


def test_readme_documents_every_event() -> None:
    section = README.read_text(encoding="utf-8").split("### Progress events on `--json`", 1)[1].split("\n## ", 1)[0]
    for event, fields in EVENTS.items():
        row = next((line for line in section.splitlines() if line.startswith(f"| `{event}`")), None)
        assert row is not None, f"README does not document {event}"
        for name in fields:
            assert f"`{name}`" in row, f"README's {event} row lacks {name}"


def test_collect_json_progress_conforms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = ["--sim", "--transport", "http", "--auth", "basic", "--sim-records", "500"]
    assert main(["collect", *sim, "--start", "2026-10-01", "--end", "2026-10-31", "--out", str(tmp_path / "case"),
                 "--json", "--operations", "MailItemsAccessed"]) == 0
    events = conforms(capsys.readouterr().err.splitlines())
    assert events[0]["event"] == "query_started" and events[-1]["event"] == "query_finished"
    assert sum(e["records"] for e in events if e["event"] == "window_done") >= events[-1]["records"] > 0

"""`mia investigate` analyses the MailItemsAccessed evidence files as `mia analyze` reads files (issue 11).

The demo case's analysis is compared with the analysis of the same records handed over as dicts (what the
investigation did before): every table is the same apart from the provenance columns, which now name the
evidence file and line each event was read from, and the counts reconcile across the searches' copies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mia_bridge.analysis import api
from mia_bridge.analysis.api import AnalysisOptions, AnalysisResult, analyze_records
from mia_bridge.cli.app import main
from mia_bridge.evidence.store import read_records

PROVENANCE = ["source_format", "source_file", "source_line"]
TABLES = ["events", "items", "synced_folders", "throttled_windows", "contexts", "leads", "message_lookup"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[list[Path], AnalysisOptions]],
                                                           AnalysisResult]:
    """The demo case, with every ``analyze_files`` call the investigation made (paths and options)."""
    calls: list[tuple[list[Path], AnalysisOptions]] = []
    results: list[AnalysisResult] = []
    real = api.analyze_files

    def spy(paths: Sequence[Path], options: AnalysisOptions, writer: Any = None) -> AnalysisResult:
        calls.append((list(paths), options))
        results.append(real(paths, options, writer))
        return results[-1]

    case = tmp_path_factory.mktemp("evidence") / "demo"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(api, "analyze_files", spy)
        assert main(["investigate", "--demo", "--out", str(case)]) == 0
    assert len(calls) == 1, "the investigation's analysis step did not read the evidence files with analyze_files"
    return case, calls, results[0]


def test_the_analysis_reads_the_mail_items_evidence_files(
    demo: tuple[Path, list[tuple[list[Path], AnalysisOptions]], AnalysisResult],
) -> None:
    case, calls, _ = demo
    paths, _ = calls[0]
    holding = sorted(p for p in (case / "evidence").glob("*.jsonl")
                     if any(r.get("Operation") == "MailItemsAccessed" for r in read_records(p)))
    assert holding and sorted(paths) == holding
    summary = json.loads((case / "analysis" / "summary.json").read_text(encoding="utf-8"))
    assert [i["path"] for i in summary["inputs"]] == [str(p) for p in paths]
    read = sum(len(read_records(p)) for p in paths)
    assert summary["records_read"] == read == summary["records_parsed"] + summary["records_quarantined"]
    assert summary["records_parsed"] == summary["records_unique"] + summary["duplicates_removed"]
    assert summary["duplicates_removed"] > 0  # the app searches found records the mailbox search found too


def test_tables_equal_the_analysis_of_the_records_as_dicts(
    demo: tuple[Path, list[tuple[list[Path], AnalysisOptions]], AnalysisResult],
) -> None:
    """As before the change (the collected records, unique by Id, handed over as dicts), apart from provenance."""
    _, calls, got = demo
    paths, options = calls[0]
    seen: set[str] = set()
    records = []
    for path in paths:
        for record in read_records(path):
            if record["Id"] not in seen and record.get("Operation") == "MailItemsAccessed":
                seen.add(record["Id"])
                records.append(record)
    want = analyze_records(records, options, source="collected MailItemsAccessed records")
    for name in TABLES:
        mine, theirs = getattr(got, name), getattr(want, name)
        if theirs is None:
            assert mine is None, name
            continue
        assert len(theirs) > 0 or name in ("message_lookup",), f"{name}: the demo should exercise it"
        pd.testing.assert_frame_equal(mine.drop(columns=PROVENANCE, errors="ignore").reset_index(drop=True),
                                      theirs.drop(columns=PROVENANCE, errors="ignore").reset_index(drop=True),
                                      obj=name, check_dtype=False)  # string NA flavours differ in memory
    assert got.summary["mail_items_accessed"] == want.summary["mail_items_accessed"]
    assert got.summary["period"] == want.summary["period"]
    assert got.summary["records_unique"] == want.summary["records_unique"]


def test_each_event_names_the_evidence_line_it_was_read_from(
    demo: tuple[Path, list[tuple[list[Path], AnalysisOptions]], AnalysisResult],
) -> None:
    case, _, _ = demo
    events = pd.read_parquet(case / "analysis" / "events.parquet")
    assert set(events["source_format"]) == {"raw_auditdata_json"}
    lines: dict[str, list[str]] = {}
    for row in events.itertuples():
        path = Path(str(row.source_file))
        assert path.parent == case / "evidence"
        if path.name not in lines:
            lines[path.name] = path.read_text(encoding="utf-8").splitlines()
        assert json.loads(lines[path.name][int(row.source_line) - 1])["Id"] == row.record_id

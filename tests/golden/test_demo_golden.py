"""Golden test of the demo case: every deterministic file byte for byte (Parquet by its schema and rows),
investigation.json with the case folder's path replaced, and the exact list of files.

A refactor must leave these unchanged. A change of output that an issue asks for updates the golden file on
purpose: ``MIA_UPDATE_GOLDEN=1 pytest tests/golden`` rewrites it, and the commit says which output changed
and why.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mia_bridge.cli.app import main

GOLDEN = Path(__file__).with_name("demo_case.json")
# Differ from run to run by design: times of the run (journals, manifest, report, the workbook's
# properties, message-trace query timings and the enrichment's clock), so they are listed, not hashed.
VOLATILE = {"manifest.json", "report.html", "sparrow/Summary_Export.xlsx", "enrich/summary.json",
            "enrich/message_trace_queries.jsonl", "enrich/raw/message_trace.jsonl"}
# Name the case folder: investigation.json, and the analysis's provenance (summary inputs, source_file of the
# records and events), which names the evidence files it read.
PATH_NORMALISED = {"investigation.json", "analysis/summary.json", "analysis/events.csv", "analysis/events.parquet",
                   "analysis/records.parquet"}


def _is_volatile(name: str) -> bool:
    return name in VOLATILE or (name.startswith("state/") and name.endswith(".journal.jsonl"))


def _snapshot(case: Path) -> dict[str, str | None]:
    files: dict[str, str | None] = {}
    for path in sorted(p for p in case.rglob("*") if p.is_file()):
        name = path.relative_to(case).as_posix()
        if _is_volatile(name):
            files[name] = None
            continue
        data = path.read_bytes()
        if name.endswith(".parquet"):  # the content, not the writer's version stamped in the file
            table = pq.read_table(path)
            data = (str(table.schema.remove_metadata()) + json.dumps(table.to_pylist(), default=str)).encode()
        if name in PATH_NORMALISED:
            data = data.replace(json.dumps(str(case))[1:-1].encode(), b"<CASE>")
        files[name] = hashlib.sha256(data).hexdigest()
    return files


@pytest.fixture(scope="module")
def demo_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = tmp_path_factory.mktemp("golden") / "demo"
    assert main(["investigate", "--demo", "--out", str(case)]) == 0
    return case


def test_demo_case_matches_golden(demo_case: Path) -> None:
    got = _snapshot(demo_case)
    if os.environ.get("MIA_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert sorted(got) == sorted(want), "the demo case's file list changed"
    changed = [name for name in want if got[name] != want[name]]
    assert not changed, f"these demo outputs changed: {changed}"

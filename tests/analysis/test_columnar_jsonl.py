"""The columnar JSON-lines read (reader + ``columnar.build_chunk``) gives exactly the rows of the record-by-record
path, or steps aside."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from mia_builders import folder, mia, odd_records

from mia_bridge.analysis.api import AnalysisOptions, analyze_files
from mia_bridge.analysis.columnar import read_jsonl_chunk, read_jsonl_chunks
from mia_bridge.analysis.intake import Intake
from mia_bridge.readers import open_input, raw_auditdata_json
from mia_bridge.readers.decoding import decode_input

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gen_records import generate

DATA = Path(__file__).resolve().parent.parent / "data"


def _slow_tables(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    intake = Intake()
    _, items = open_input(path)
    intake.extend(items)
    return intake.tables()


def _assert_same(path: Path) -> None:
    chunk = read_jsonl_chunk(decode_input(path))
    assert chunk is not None
    records, folders, items = _slow_tables(path)
    columns = [c for c in records.columns if c != "raw_json"]  # fast keeps the line, slow the parsed record
    pd.testing.assert_frame_equal(chunk.records[columns], records[columns], check_dtype=False)
    pd.testing.assert_frame_equal(chunk.folders, folders, check_dtype=False)
    pd.testing.assert_frame_equal(chunk.items, items, check_dtype=False)


def test_generated_and_odd_records_match(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    lines = [json.dumps(r) for r in [*generate(300, seed=3), *odd_records()]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _assert_same(path)
    gz = tmp_path / "records.jsonl.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert read_jsonl_chunk(decode_input(gz)) is not None


@pytest.mark.parametrize("name", ["truncated.jsonl", "missing_timestamp.jsonl"])
def test_irregular_input_steps_aside(name: str) -> None:
    assert read_jsonl_chunk(decode_input(DATA / name)) is None


def test_blank_lines_and_type_conflicts_step_aside(tmp_path: Path) -> None:
    good = json.dumps(mia("2024-05-01T10:00:00"))
    blank = tmp_path / "blank.jsonl"
    blank.write_text(good + "\n\n" + json.dumps(mia("2024-05-01T10:01:00")) + "\n", encoding="utf-8")
    assert read_jsonl_chunk(decode_input(blank)) is None
    conflict = tmp_path / "conflict.jsonl"
    conflict.write_text(good + "\n" + json.dumps(mia("2024-05-01T10:01:00", Folders="[]")) + "\n", encoding="utf-8")
    assert read_jsonl_chunk(decode_input(conflict)) is None
    s = analyze_files([blank, conflict], AnalysisOptions()).summary
    assert s["records_read"] == 4 and s["records_quarantined"] == 0


def test_many_small_blocks_and_a_line_longer_than_a_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Block boundaries fall between lines, numbering runs on across blocks, an overlong line is one block."""
    monkeypatch.setattr(raw_auditdata_json, "_BLOCK", 4096)
    long_path = "\\Inbox\\" + "x" * 6000
    records = [*generate(200, seed=9), mia("2024-05-01T10:00:00", folders=[folder(long_path, "<long@x>")]),
               *generate(20, seed=10)]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")  # no final newline either
    _assert_same(path)
    chunks = read_jsonl_chunks(decode_input(path))
    assert chunks is not None and len(chunks) > 50
    assert sum(len(c.records) for c in chunks) == len(records)


def test_non_ascii_text_is_lower_cased_as_python_does(tmp_path: Path) -> None:
    """Arrow's UTF-8 kernel lower-cases ``İ`` to ``i``; ``normalise`` (``str.lower``) to ``i̇``: the rows agree."""
    odd = mia("2024-05-01T10:00:00", mailbox="İlker@Contoso.example", ip="[FE80::İ]:443", app="ÅPP-İD",
              folders=[folder("\\Inbox", "<İD@Example.COM>")], ClientAppId="İD")
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [mia("2024-05-01T10:01:00"), odd]) + "\n", encoding="utf-8")
    _assert_same(path)
    chunk = read_jsonl_chunk(decode_input(path))
    assert chunk is not None and chunk.records["mailbox"].iloc[1] == "i̇lker@contoso.example"

"""A saved base (``--keep-base``, ``saved_base``): the Parquet of a previous run, analysed again.

Analysing OUT/base gives what analysing the original exports gives, with other options than the first run's
(a period the first run did not have: the base keeps what the outputs leave out). Only summary.json's
``inputs`` differs (it names the base folder). A damaged base stops the run with one line naming the file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import assert_same_analysis

from mia_bridge.analysis import saved_base
from mia_bridge.analysis.api import AnalysisOptions, OutputWriter, analyze_files
from mia_bridge.cli.app import main
from mia_bridge.cli.commands.analyze import demo_dir

DATA = Path(__file__).resolve().parents[1] / "data"
CORPUS = [DATA / name for name in ("missing_timestamp.jsonl", "truncated.jsonl", "invalid_auditdata_json.csv",
                                   "mailbox_audit_log.csv", "sparrow_mailitems_exo.csv", "short_row.csv",
                                   "wrong_columns.csv", "empty.csv", "binary_junk.bin")]


def _run(paths: list[Path], options: AnalysisOptions, out: Path, keep_base: bool = False) -> dict[str, Any]:
    with OutputWriter(out, keep_base=keep_base) as writer:
        writer.finish(analyze_files(paths, options, writer))
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text("utf-8"))
    return summary


def _demo() -> list[Path]:
    return [demo_dir() / "unified_audit_log.jsonl", demo_dir() / "purview_export.csv"]


def test_a_saved_base_gives_the_analysis_of_the_exports_with_other_options(tmp_path: Path) -> None:
    first = _run(_demo(), AnalysisOptions(start=datetime(2024, 5, 2, tzinfo=UTC)), tmp_path / "first",
                 keep_base=True)
    assert first["period"]["records_outside_period"] > 0  # the first run's outputs leave records out
    options = AnalysisOptions(
        message_ids=(demo_dir() / "message_ids.txt").read_text("utf-8").split(), suspicious_ips=("203.0.113.66",),
        known_good_ips=("198.51.100.1",), end=datetime(2024, 5, 3, tzinfo=UTC))
    raw = _run(_demo(), options, tmp_path / "raw")
    again = _run([tmp_path / "first"], options, tmp_path / "again")
    assert_same_analysis(tmp_path / "raw", tmp_path / "again")
    assert again["inputs"] == [{"path": str(tmp_path / "first"), "format": saved_base.FORMAT_NAME,
                                "records_read": raw["records_read"], "records_quarantined": 0, "error": None}]
    assert raw["duplicates_removed"] == again["duplicates_removed"] == 50
    # OUT/base names the same base; the manifest keeps the first run's inputs
    _run([tmp_path / "first" / "base"], options, tmp_path / "again2")
    assert_same_analysis(tmp_path / "raw", tmp_path / "again2")
    manifest = json.loads((tmp_path / "first" / "base" / "base.json").read_text("utf-8"))
    assert [Path(e["path"]).name for e in manifest["inputs"]] == ["unified_audit_log.jsonl", "purview_export.csv"]


def test_a_saved_base_keeps_quarantine_conflicts_and_counts(tmp_path: Path) -> None:
    raw = _run(CORPUS, AnalysisOptions(), tmp_path / "raw", keep_base=True)
    again = _run([tmp_path / "raw"], AnalysisOptions(), tmp_path / "again")
    assert raw["records_quarantined"] > 0
    assert_same_analysis(tmp_path / "raw", tmp_path / "again")
    assert again["records_read"] == again["records_parsed"] + again["records_quarantined"]


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kept") / "out"
    _run(_demo(), AnalysisOptions(), out, keep_base=True)
    return out


def _damaged(kept: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(kept, copy)
    return copy / "base"


def _cli_error(args: list[str], capsys: pytest.CaptureFixture[str], code: int = 1) -> str:
    assert main(args) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("damage, expected", [
    ("manifest_json", "invalid JSON"),
    ("manifest_version", "version 7"),
    ("manifest_counts", "do not reconcile"),
    ("no_items", "no Parquet files"),
    ("column_missing", "column mailbox is missing"),
    ("column_type", "column rec is text, not integer"),
    ("records_count", "were parsed"),
    ("quarantine_count", "quarantined records, but"),
])
def test_a_damaged_base_is_refused_in_one_line_naming_the_file(kept: Path, tmp_path: Path, damage: str,
                                                                 expected: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    base = _damaged(kept, tmp_path)
    manifest = base / "base.json"
    data = json.loads(manifest.read_text("utf-8"))
    part = sorted((base / "records").glob("*.parquet"))[0]
    named = manifest
    if damage == "manifest_json":
        manifest.write_text("{not json", "utf-8")
    elif damage in ("manifest_version", "manifest_counts", "records_count", "quarantine_count"):
        if damage == "manifest_version":
            data["version"] = 7
        elif damage == "manifest_counts":
            data["records_read"] += 1
        elif damage == "records_count":
            data["records_parsed"] += 1
            data["records_read"] += 1
            named = base / "records"
        else:
            data["records_quarantined"] += 1
            data["records_read"] += 1
            named = base / "quarantine.jsonl"
        manifest.write_text(json.dumps(data), "utf-8")
    elif damage == "no_items":
        for item in (base / "items").glob("*.parquet"):
            item.unlink()
        named = base / "items"
    else:
        table = pq.read_table(part)
        if damage == "column_missing":
            table = table.drop_columns(["mailbox"])
        else:
            table = table.set_column(table.column_names.index("rec"), "rec", table.column("rec").cast("string"))
        pq.write_table(table, part)
        named = part
    err = _cli_error(["analyze", str(base.parent), "--out", str(tmp_path / "o")], capsys)
    assert expected in err and str(named) in err, err
    assert not (tmp_path / "o" / "summary.json").exists()


def test_a_saved_base_is_analysed_alone(kept: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _cli_error(["analyze", str(kept), str(DATA / "truncated.jsonl"), "--out", str(tmp_path / "o")], capsys,
                     code=2)
    assert "analysed alone" in err


def test_cli_keep_base_then_analyse_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "--demo", "--out", str(tmp_path / "a"), "--keep-base"]) == 0
    assert (tmp_path / "a" / "base" / "base.json").is_file()
    assert main(["analyze", str(tmp_path / "a"), "--out", str(tmp_path / "b"),
                 "--message-ids", str(demo_dir() / "message_ids.txt")]) == 0
    assert_same_analysis(tmp_path / "a", tmp_path / "b")
    assert not (tmp_path / "b" / "base").exists()


def test_an_out_uri_needs_the_spark_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _cli_error(["analyze", "--demo", "--out", f"file://{tmp_path}/o"], capsys, code=2)
    assert "--engine spark" in err
    assert not (tmp_path / "o").exists()


def test_an_output_folder_without_base_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "--demo", "--out", str(tmp_path / "a")]) == 0
    err = _cli_error(["analyze", str(tmp_path / "a"), "--out", str(tmp_path / "b")], capsys)
    assert "without --keep-base" in err and str(tmp_path / "a") in err

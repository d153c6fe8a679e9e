"""The Spark engine and the Parquet of a previous run (a saved base, ``saved_base``), and ``--out`` on the cluster.

- A saved base written by either engine is analysed by either engine to the outputs the original exports
  give (with other options than the first run's); only summary.json's ``inputs`` differs (it names the base).
- ``--out URI`` (here ``file:///...``, which the local writer never takes): every output written by Spark's
  writers and Hadoop's FileSystem API, with the local writer made to fail; the tables are folders of part files
  whose rows, read back in name order, are the local run's rows; the saved base written there is read back
  from its URI.
- A damaged base read by Spark: one line naming the file, never a Java stack trace.

Skips like test_spark_engine.py where pyspark or Java is missing (fails with ``MIA_REQUIRE_SPARK=1``).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_same_analysis

from mia_bridge.analysis import saved_base
from mia_bridge.analysis.api import AnalysisOptions, OutputWriter, analyze_files
from mia_bridge.analysis.engines.spark import analyze_files_spark
from mia_bridge.cli.commands.analyze import demo_dir
from mia_bridge.errors import UnreadableInput

DATA = Path(__file__).resolve().parents[1] / "data"
CORPUS = [DATA / name for name in ("missing_timestamp.jsonl", "truncated.jsonl", "invalid_auditdata_json.csv",
                                   "mailbox_audit_log.csv", "sparrow_mailitems_exo.csv", "short_row.csv",
                                   "wrong_columns.csv", "empty.csv", "binary_junk.bin")]


def _embedded(paths: list[Path], options: AnalysisOptions, out: Path, keep_base: bool = False) -> None:
    with OutputWriter(out, keep_base=keep_base) as writer:
        writer.finish(analyze_files(paths, options, writer))


def _spark(spark: Any, paths: list[str], options: AnalysisOptions, out: Path, keep_base: bool = False) -> None:
    with OutputWriter(out, keep_base=keep_base) as writer:
        writer.finish(analyze_files_spark(paths, options, writer, spark=spark))


def test_saved_bases_of_either_engine_give_the_analysis_of_the_exports(spark: Any, tmp_path: Path) -> None:
    demo = [demo_dir() / "unified_audit_log.jsonl", demo_dir() / "purview_export.csv"]
    first = AnalysisOptions(start=datetime(2024, 5, 2, tzinfo=UTC))
    _spark(spark, [str(p) for p in demo], first, tmp_path / "spark-first", keep_base=True)
    _embedded(demo, first, tmp_path / "embedded-first", keep_base=True)
    options = AnalysisOptions(
        message_ids=(demo_dir() / "message_ids.txt").read_text("utf-8").split(), suspicious_ips=("203.0.113.66",),
        end=datetime(2024, 5, 3, tzinfo=UTC))
    _embedded(demo, options, tmp_path / "raw")
    _spark(spark, [str(tmp_path / "spark-first")], options, tmp_path / "spark-from-spark")
    assert_same_analysis(tmp_path / "raw", tmp_path / "spark-from-spark")
    _spark(spark, [str(tmp_path / "embedded-first" / "base")], options, tmp_path / "spark-from-embedded")
    assert_same_analysis(tmp_path / "raw", tmp_path / "spark-from-embedded")
    _embedded([tmp_path / "spark-first"], options, tmp_path / "embedded-from-spark")
    assert_same_analysis(tmp_path / "raw", tmp_path / "embedded-from-spark")
    summary = json.loads((tmp_path / "spark-from-spark" / "summary.json").read_text("utf-8"))
    assert summary["inputs"][0]["format"] == saved_base.FORMAT_NAME and summary["duplicates_removed"] == 50


def _parts(folder: Path, suffix: str) -> list[Path]:
    parts = sorted(folder.glob(f"part-*{suffix}"))
    assert parts, folder
    return parts


def test_out_uri_is_written_by_spark_never_by_the_local_writer(spark: Any, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from mia_bridge.analysis import outputs
    from mia_bridge.cli import app
    from mia_bridge.cli.commands import analyze

    _embedded(CORPUS, AnalysisOptions(), tmp_path / "local")
    remote = tmp_path / "remote"

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the local writer was used for an --out URI")

    monkeypatch.setattr(analyze, "OutputWriter", refused)
    for name in ("open_private", "write_text", "make_dir"):
        monkeypatch.setattr(outputs, name, refused)
    code = app.main(["analyze", *map(str, CORPUS), "--out", remote.as_uri(), "--engine", "spark", "--keep-base"])
    err = capsys.readouterr().err
    assert code == 0, err
    local = tmp_path / "local"
    for name in sorted(p.name for p in local.iterdir()):
        if name.endswith(".parquet"):
            want = pq.read_table(local / name)
            got = pa.concat_tables([pq.read_table(p) for p in _parts(remote / name, ".parquet")])
            assert got.column_names == want.column_names, name
            for column in want.column_names:
                assert got.column(column).cast(want.schema.field(column).type).to_pylist() == \
                    want.column(column).to_pylist(), (name, column)
        elif name.endswith(".csv"):
            want_csv = pd.read_csv(local / name, dtype=str, keep_default_na=False)
            got_csv = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False)
                                 for p in _parts(remote / name, ".csv")], ignore_index=True)
            pd.testing.assert_frame_equal(got_csv, want_csv, check_dtype=False)
        elif name == "summary.json":
            assert json.loads((remote / name).read_text("utf-8")) == json.loads((local / name).read_text("utf-8"))
        else:
            assert (remote / name).read_bytes() == (local / name).read_bytes(), name
    assert json.loads((remote / "summary.json").read_text("utf-8"))["records_quarantined"] > 0
    monkeypatch.undo()
    # the saved base written on "the cluster" is read back from its URI
    _spark(spark, [remote.as_uri()], AnalysisOptions(), tmp_path / "again")
    assert_same_analysis(local, tmp_path / "again")


def test_a_damaged_base_is_named_in_one_line(spark: Any, tmp_path: Path) -> None:
    _embedded([demo_dir() / "unified_audit_log.jsonl"], AnalysisOptions(), tmp_path / "out", keep_base=True)
    base = tmp_path / "out" / "base"
    for part in (base / "folders").glob("*.parquet"):
        table = pq.read_table(part)
        pq.write_table(table.drop_columns(["folder_path"]), part)
    with pytest.raises(UnreadableInput) as caught:
        analyze_files_spark([(tmp_path / "out").as_uri()], AnalysisOptions(), spark=spark)
    message = caught.value.message
    assert "folders" in message and "column folder_path is missing" in message
    assert "\n" not in message and "at org.apache" not in message
    _embedded([demo_dir() / "unified_audit_log.jsonl"], AnalysisOptions(), tmp_path / "out2", keep_base=True)
    shutil.rmtree(tmp_path / "out2" / "base" / "items")
    with pytest.raises(UnreadableInput) as caught:
        analyze_files_spark([str(tmp_path / "out2")], AnalysisOptions(), spark=spark)
    assert "items" in caught.value.message and "\n" not in caught.value.message

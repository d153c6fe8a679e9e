"""The Spark engine (``mia analyze --engine spark``) against the embedded one: identical outputs.

One SparkSession for every test here (``local[2]``, bound to 127.0.0.1, UI off, two shuffle partitions). The
tests skip with the reason where pyspark or Java is missing, and fail instead where ``MIA_REQUIRE_SPARK=1``
(.ci/run installs both), like the real-data and Kerberos tests.

Parity means: every output file (summary.json, each table's CSV and Parquet, records.parquet,
quarantine.jsonl) byte for byte or, for Parquet, equal tables with equal schemas. No field is engine-specific.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import realdata_path

from mia_bridge.analysis.api import AnalysisOptions, OutputWriter, analyze_files
from mia_bridge.analysis.engines.spark import analyze_files_spark
from mia_bridge.cli.commands.analyze import demo_dir
from mia_bridge.errors import ReaderError

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"


def _embedded(paths: list[Path], options: AnalysisOptions, out: Path) -> None:
    with OutputWriter(out) as writer:
        writer.finish(analyze_files(paths, options, writer))


def _spark(spark: Any, paths: list[Path], options: AnalysisOptions, out: Path) -> None:
    with OutputWriter(out) as writer:
        writer.finish(analyze_files_spark([str(p) for p in paths], options, writer, spark=spark))


def assert_same_outputs(expected: Path, actual: Path) -> None:
    names = sorted(p.name for p in expected.iterdir())
    assert names == sorted(p.name for p in actual.iterdir())
    for name in names:
        if name.endswith(".parquet"):
            want, got = pq.read_table(expected / name), pq.read_table(actual / name)
            assert got.schema == want.schema, name
            assert got.equals(want), name
        elif name == "summary.json":
            assert json.loads((actual / name).read_text("utf-8")) == json.loads((expected / name).read_text("utf-8"))
        else:
            assert (actual / name).read_bytes() == (expected / name).read_bytes(), name


def _parity(spark: Any, tmp_path: Path, paths: list[Path], options: AnalysisOptions) -> dict[str, Any]:
    _embedded(paths, options, tmp_path / "embedded")
    _spark(spark, paths, options, tmp_path / "spark")
    assert_same_outputs(tmp_path / "embedded", tmp_path / "spark")
    summary: dict[str, Any] = json.loads((tmp_path / "spark" / "summary.json").read_text("utf-8"))
    return summary


def test_demo_with_every_option_is_identical_on_both_engines(spark: Any, tmp_path: Path) -> None:
    demo = demo_dir()
    options = AnalysisOptions(
        message_ids=(demo / "message_ids.txt").read_text("utf-8").split(), suspicious_ips=("203.0.113.66",),
        suspicious_apps=("5a95e683-08ad-424e-a441-1d1aec52c02c",), known_good_ips=("198.51.100.1",),
        start=datetime(2024, 5, 1, tzinfo=UTC), end=datetime(2024, 5, 3, tzinfo=UTC))
    summary = _parity(spark, tmp_path, [demo / "unified_audit_log.jsonl", demo / "purview_export.csv"], options)
    # The Purview CSV repeats 50 records of the JSON lines: compared through dedup.py's read-back on both.
    assert summary["duplicates_removed"] == 50
    assert summary["records_read"] == summary["records_parsed"] + summary["records_quarantined"]


def test_test_corpus_with_bad_files_and_quarantine_is_identical(spark: Any, tmp_path: Path) -> None:
    paths = [DATA / name for name in ("missing_timestamp.jsonl", "truncated.jsonl", "invalid_auditdata_json.csv",
                                      "mailbox_audit_log.csv", "sparrow_mailitems_exo.csv", "short_row.csv",
                                      "wrong_columns.csv", "empty.csv", "binary_junk.bin")]
    summary = _parity(spark, tmp_path, paths, AnalysisOptions())
    assert summary["records_quarantined"] > 0
    assert any(entry["error"] for entry in summary["inputs"])


def test_real_samples_are_identical(spark: Any, tmp_path: Path) -> None:
    paths = [realdata_path("sentinel-training-lab", "office_activity.csv"),
             realdata_path("otrf-goldensaml", "OfficeActivityEvents.json"),
             realdata_path("msticpy", "demo_exchange_data.csv")]
    summary = _parity(spark, tmp_path, paths, AnalysisOptions(suspicious_ips=("175.45.176.99",)))
    assert summary["records_read"] > 0


def test_files_split_by_spark_read_as_whole_files(spark: Any, tmp_path: Path) -> None:
    """Small splits: every JSON-lines and CSV file is read in many parts (a CSV's later parts after its
    header); lines, record positions, duplicates and .gz inputs come out as from whole files."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gen_records
    finally:
        sys.path.pop(0)
    jsonl, purview = tmp_path / "records.jsonl", tmp_path / "purview.csv"
    gen_records.write_jsonl(jsonl, gen_records.generate_realistic(1500))
    gen_records.write_purview_csv(purview, gen_records.generate_realistic(400))
    gz = tmp_path / "again.jsonl.gz"
    subprocess.run(["gzip", "-k", "-c", str(jsonl)], stdout=gz.open("wb"), check=True)
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(256 * 1024))
    spark.conf.set("spark.sql.files.openCostInBytes", "0")
    try:
        summary = _parity(spark, tmp_path, [jsonl, purview, gz], AnalysisOptions())
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
        spark.conf.unset("spark.sql.files.openCostInBytes")
    assert summary["duplicates_removed"] >= 1500  # the .gz repeats the JSON lines


def test_a_file_spark_cannot_read_is_named_with_the_formats_taken(spark: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.jsonl"
    with pytest.raises(ReaderError) as caught:
        analyze_files_spark([str(missing)], AnalysisOptions(), spark=spark)
    message = caught.value.message + " " + (caught.value.hint or "")
    assert str(missing) in message and "JSON lines" in message and "CSV" in message
    assert "at org.apache" not in message and "\n" not in caught.value.message
    array = tmp_path / "not_a_gz"
    array.write_bytes(b"\x1f\x8b\x08\x00junk")
    with pytest.raises(ReaderError) as caught:
        analyze_files_spark([str(array)], AnalysisOptions(), spark=spark)
    assert str(array) in caught.value.message and ".gz" in caught.value.message


def test_cli_names_an_unreadable_input_in_one_line(spark: Any, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from mia_bridge.cli.app import main

    missing = tmp_path / "nowhere.jsonl"
    code = main(["analyze", str(missing), "--out", str(tmp_path / "o"), "--engine", "spark"])
    err = capsys.readouterr().err
    assert code == 1
    assert str(missing) in err and "JSON lines" in err
    assert "Traceback" not in err and "at org.apache" not in err and "Py4J" not in err


def test_cli_refuses_an_unknown_engine(tmp_path: Path) -> None:
    from mia_bridge.cli.app import main

    assert main(["analyze", "--demo", "--out", str(tmp_path / "o"), "--engine", "hadoop"]) == 2

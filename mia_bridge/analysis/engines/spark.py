"""The Spark engine: ``mia analyze --engine spark [--spark-master URL]``.

The same analysis as the embedded engine, on Apache Spark (``pip install 'mia-bridge[spark]'`` and a Java 17
runtime): the inputs are read on the executors by the project's own readers and normalisation
(``spark_read``), de-duplicated by ``dedup.py`` (only records whose Id repeats are compared: those are
brought to the driver), and the analysis SQL (``analysis/sql``, DuckDB dialect) runs on Spark through
``sqlglot.transpile(..., read="duckdb", write="spark")``.

Masters: ``local[N]`` (tests, one machine), ``spark://host:7077`` / ``yarn`` / ``k8s://...`` (a cluster: the
executors need this package installed), ``sc://host:15002`` (Spark Connect). Inputs may be any path Spark
reads (file://, hdfs://, s3a://, abfss://; a folder or a glob stands for its files in name order).
"""

from __future__ import annotations

import bisect
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mia_bridge.analysis import saved_base
from mia_bridge.analysis.dedup import _read_back, deduplicate
from mia_bridge.analysis.engines import is_uri
from mia_bridge.analysis.engines.spark_read import (
    FORMATS_TAKEN,
    KIND_FOLDER,
    KIND_ITEM,
    KIND_QUARANTINE,
    KIND_RECORD,
    KIND_SPLIT,
    FilePlan,
    canonical_uri,
    csv_text,
    head_lines,
    map_partition,
    pick_lines,
    spark_schema_ddl,
)
from mia_bridge.analysis.intake import BUILT_COLUMNS, FOLDER_ROW_COLUMNS, ITEM_ROW_COLUMNS, QUARANTINE_COLUMNS
from mia_bridge.errors import ExportError, MiaError, ReaderError, UnreadableInput, UsageError
from mia_bridge.readers.registry import prepare
from mia_bridge.safe_files import make_dir, write_text

NAME = "spark"
DEFAULT_MASTER = "local[2]"
INSTALL_HINT = ("pip install 'mia-bridge[spark]' and a Java 17 runtime (Debian/Ubuntu: apt-get install "
                "openjdk-17-jre-headless)")
_HEAD_LINES, _HEAD_BYTES = 200, 64 * 1024
WORK_ENV = "MIA_SPARK_WORK"  # a folder every executor can write (default: a local temporary folder)


class SparkUnavailable(MiaError):
    """pyspark or Java is missing."""


def unavailable_reason(master: str = DEFAULT_MASTER) -> str | None:
    """Why the Spark engine cannot run here (None: it can)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed"
    if master.startswith("sc://"):
        return None  # Spark Connect: the server runs the JVM
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").exists()) and shutil.which("java") is None:
        return "no Java runtime (java is not on PATH and JAVA_HOME is not set)"
    return None


def _log4j_config() -> str:
    """A log4j2 configuration that keeps Spark's own log at ERROR (its stack traces are not for responders)."""
    path = Path(tempfile.gettempdir()) / "mia-spark-log4j2.properties"
    if not path.exists():
        path.write_text("rootLogger.level = error\nrootLogger.appenderRef.stderr.ref = console\n"
                        "appender.console.type = Console\nappender.console.name = console\n"
                        "appender.console.target = SYSTEM_ERR\nappender.console.layout.type = PatternLayout\n"
                        "appender.console.layout.pattern = spark: %p %c{1}: %m%n\n", encoding="utf-8")
    return str(path)


def session(master: str = DEFAULT_MASTER, conf: dict[str, str] | None = None) -> Any:
    """A SparkSession for ``master`` (``sc://`` is Spark Connect); quiet, UI off, times in UTC."""
    reason = unavailable_reason(master)
    if reason is not None:
        raise SparkUnavailable(f"the Spark engine cannot run: {reason}", hint=INSTALL_HINT)
    from pyspark.sql import SparkSession

    settings = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        **(conf or {}),
    }
    if master.startswith("sc://"):
        builder = SparkSession.builder.remote(master)
        for key, value in settings.items():
            if not key.startswith("spark.ui"):
                builder = builder.config(key, value)
        return builder.getOrCreate()
    log4j = f"-Dlog4j2.configurationFile=file:{_log4j_config()}"
    settings.update({
        "spark.driver.extraJavaOptions": log4j,
        "spark.executor.extraJavaOptions": log4j,
    })
    if master.startswith("local"):
        # One machine: executors are this Python, and nothing listens beyond the loopback interface.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        settings.update({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"})
        # The driver's JVM is the executor too: Spark's default 1 GB heap is short of what Arrow batches of a
        # few hundred thousand rows and the sorts of the outputs need (MIA_SPARK_DRIVER_MEMORY overrides).
        settings.setdefault("spark.driver.memory", os.environ.get("MIA_SPARK_DRIVER_MEMORY", "2g"))
    builder = SparkSession.builder.master(master).appName("mia-bridge")
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_message(exc: BaseException) -> str:
    """One line out of a Spark/Py4J failure (never its Java stack trace)."""
    text = str(getattr(exc, "getMessage", lambda: None)() or exc)
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return first[:500]


def _spark_errors() -> tuple[type[BaseException], ...]:
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return (PySparkException, Py4JError)


def spark_path(path: str) -> str:
    """A path as Spark takes it: a local one made absolute (file:), a URI as given."""
    return path if is_uri(path) else Path(path).absolute().as_uri()


def _same_file(uri: str, local: str) -> bool:
    return unquote(urlparse(uri).path) == str(Path(local).absolute())


@dataclass
class InputFile:
    display: str  # the name tables and messages use
    uri: str  # Spark's name for it (``_metadata.file_path``)
    given: str  # the input argument it came from


@dataclass
class SparkBase:
    """The base relations on Spark, with the counts and reports ingest produces (``base_tables.BaseTables``)."""

    records: Any  # DataFrame: BUILT_COLUMNS + rec, fingerprint, duplicate
    folders: Any  # DataFrame: FOLDER_ROW_COLUMNS + pos
    items: Any  # DataFrame: ITEM_ROW_COLUMNS + pos
    quarantine: pd.DataFrame
    read: int
    parsed: int
    quarantined: int
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)


class SparkEngine:
    """Reads inputs into base relations and runs the analysis SQL, on one SparkSession."""

    def __init__(self, spark: Any, work: str, local_work: Path, local: bool = True) -> None:
        self.spark = spark
        self.local = local  # the executors run on this machine and share its file system
        self.work = work.rstrip("/")  # a folder every executor can write (Spark path)
        self.local_work = local_work  # the driver's scratch folder
        self.local_work.mkdir(parents=True, exist_ok=True)
        self._splits = pd.DataFrame(columns=["file_idx", "block", "line_offset"])
        self._uris: list[str] = []

    # --- inputs -------------------------------------------------------------------------------------------

    def _files_of(self, given: str) -> list[InputFile]:
        uri = spark_path(given)
        try:
            found = sorted(self.spark.read.format("text").load(uri).inputFiles())
        except _spark_errors() as exc:
            raise UnreadableInput(given, f"Spark cannot read it: {spark_message(exc)}",
                                  hint=f"the Spark engine takes {'; '.join(FORMATS_TAKEN)}") from None
        local_file = not is_uri(given) and Path(given).is_file()
        return [InputFile(given if local_file and len(found) == 1 and _same_file(f, given) else f,
                          canonical_uri(f), given) for f in found]

    def _lines(self, uris: Sequence[str]) -> Any:
        from pyspark.sql import functions as F

        # Lines end at "\n" only: a "\r" stays in its line, so joining the lines with "\n" gives back the
        # file's bytes (UTF-16 text included).
        frame = self.spark.read.format("text").option("lineSep", "\n").load(list(uris))
        return frame.select(F.col("value").cast("binary").alias("value"),
                            F.col("_metadata.file_path").alias("path"),
                            F.col("_metadata.file_block_start").alias("block"),
                            # the whole file in this split: its size tells whether it ends with a newline
                            (F.col("_metadata.file_block_length") == F.col("_metadata.file_size")).alias("whole"),
                            F.col("_metadata.file_size").alias("size"))

    def _heads(self, files: list[InputFile]) -> dict[str, list[bytes]]:
        """The first lines of each file (from its first split)."""
        from pyspark.sql import functions as F

        lines = self._lines([f.uri for f in files]).where(F.col("block") == 0).select("value", "path")
        schema = "path string, idx bigint, value binary"
        rows = lines.mapInArrow(partial(head_lines, limit_lines=_HEAD_LINES, limit_bytes=_HEAD_BYTES),
                                schema).toArrow() if hasattr(lines, "toArrow") else None
        heads: dict[str, list[tuple[int, bytes]]] = {}
        if rows is not None:
            for path, idx, value in zip(rows.column("path").to_pylist(), rows.column("idx").to_pylist(),
                                        rows.column("value").to_pylist(), strict=True):
                heads.setdefault(path, []).append((idx, value))
        return {path: [v for _, v in sorted(entries)] for path, entries in heads.items()}

    def _plan(self, file: InputFile, head: list[bytes], fmt: str | None, max_record_bytes: int) -> FilePlan:
        """Sniff a file's start with the project's reader registry; ``UnreadableInput`` when Spark cannot
        take it."""
        if head and head[0].startswith(b"\x1f\x8b"):
            raise UnreadableInput(file.display, "gzip data without a .gz name (Spark decompresses by name)",
                                  hint="rename it to end in .gz")
        fd, name = tempfile.mkstemp(prefix="head-", suffix=".txt", dir=self.local_work)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(b"\n".join(head) + (b"\n" if head else b""))
            try:
                reader, _, sniffed = prepare(Path(name), fmt, max_record_bytes)
            except UnreadableInput as exc:
                raise UnreadableInput(file.display, exc.reason.replace(name, file.display), line=exc.line,
                                      hint=exc.hint) from None
        finally:
            Path(name).unlink(missing_ok=True)
        prefix_lines = 0
        if sniffed.json_kind is None:  # delimited text: later splits are read after the header
            texts = [line.decode("utf-8", "replace") for line in head]
            prefix_lines = next((i + 1 for i, t in enumerate(texts) if t.strip() and not t.startswith(("#TYPE",
                                                                                                        "\ufeff#TYPE"))),
                                0)
        prefix = b"".join(line + b"\n" for line in head[:prefix_lines])
        return FilePlan(file.display, reader.NAME, prefix, prefix_lines, max_record_bytes,
                        whole=sniffed.json_kind == "array")

    def ingest(self, paths: Sequence[str], fmt: str | None, max_record_bytes: int) -> SparkBase:
        from pyspark.sql import functions as F

        errors = _spark_errors()
        saved = self._saved_base(paths)
        if saved is not None:
            return self.load_base(saved, paths[0])
        reports: list[dict[str, Any]] = []
        files: list[InputFile] = []
        for given in paths:
            try:
                found = self._files_of(given)
            except UnreadableInput as exc:
                reports.append({"path": given, "format": None, "records_read": 0, "records_quarantined": 0,
                                "error": exc.message})
                continue
            if not found:
                reports.append({"path": given, "format": None, "records_read": 0, "records_quarantined": 0,
                                "error": f"{given}: no files"})
            files += found
        failed: set[str] = set()
        try:
            heads = self._heads(files) if files else {}
        except errors:
            heads, failed = self._heads_one_by_one(files, reports)
        plans: dict[str, tuple[int, FilePlan]] = {}
        report_of: dict[str, dict[str, Any]] = {}
        ordered: list[InputFile] = []
        for file in files:
            report: dict[str, Any] = {"path": file.display, "format": None, "records_read": 0,
                                      "records_quarantined": 0, "error": None}
            if file.uri in failed:
                continue
            try:
                plan = self._plan(file, heads.get(file.uri, []), fmt, max_record_bytes)
            except UnreadableInput as exc:
                report["error"] = exc.message
                reports.append(report)
                continue
            report["format"] = plan.fmt
            plans[file.uri] = (len(ordered), plan)
            report_of[file.uri] = report
            ordered.append(file)
            reports.append(report)
        mapped_path = f"{self.work}/mapped"
        if ordered:
            lines = self._lines([f.uri for f in ordered])
            executor_work = str(self.local_work) if self.local else None
            mapped = lines.mapInArrow(partial(map_partition, plans=plans, workdir=executor_work), spark_schema_ddl())
            try:
                # Not partitioned by kind: a partitioned write sorts every task's rows first (measured: the
                # mapping of 1M records spent most of its time there). Readers filter on kind.
                mapped.write.mode("overwrite").parquet(mapped_path)
            except errors as exc:
                raise ReaderError(f"Spark could not read the inputs: {spark_message(exc)}",
                                  hint=f"the Spark engine takes {'; '.join(FORMATS_TAKEN)}") from None
        base = self.spark.read.parquet(mapped_path) if ordered else self.spark.createDataFrame([], spark_schema_ddl())
        # The per-split counts and the quarantined records, in one pass.
        small = base.where(F.col("kind").isin(KIND_SPLIT, KIND_QUARANTINE)).select(
            "kind", "file_idx", "block", "pos", "s_lines", "s_read", "s_parsed", "s_error", "source_file", "q_line",
            "q_reason", "q_raw").toPandas()
        splits = small[small["kind"] == KIND_SPLIT].reset_index(drop=True)
        offsets = _offsets(splits)
        self._splits, self._uris = offsets, [f.uri for f in ordered]
        for file_idx, count in splits.groupby("file_idx").size().items():
            plan = plans[ordered[int(file_idx)].uri][1]
            if plan.whole and count > 1:
                raise ReaderError(f"{plan.display}: a JSON array that Spark splits into {count} parts cannot be "
                                  "read in parts", hint="convert it to JSON lines (one record a line), or use "
                                  "--engine embedded")
        for row in splits.sort_values(["file_idx", "block"]).itertuples():
            report = report_of[ordered[int(row.file_idx)].uri]
            report["records_read"] += int(row.s_read)
            if isinstance(row.s_error, str) and report["error"] is None:
                report["error"] = row.s_error
        if all(r["error"] is not None and r["records_read"] == 0 for r in reports) and reports:
            raise ReaderError("no input could be read: " + "; ".join(r["error"] or "" for r in reports),
                              hint=f"the Spark engine takes {'; '.join(FORMATS_TAKEN)}")
        joined = base.join(F.broadcast(self.spark.createDataFrame(offsets)), ["file_idx", "block"])
        line = F.col("line_offset")
        records = joined.where(F.col("kind") == KIND_RECORD).select(
            *[F.col(c) for c in BUILT_COLUMNS if c != "source_line"],
            (F.col("source_line") + line).alias("source_line"),
            (F.col("rec_offset") + F.col("local_rec")).alias("rec"))
        records = records.select(*BUILT_COLUMNS, "rec")
        # pos: the row's place in input order (split number in the high bits, its place in the split below)
        pos = (F.col("split_no") * F.lit(1 << 40) + F.col("pos")).alias("pos")
        rec = (F.col("rec_offset") + F.col("local_rec")).alias("rec")
        folders = joined.where(F.col("kind") == KIND_FOLDER).select(rec, "folder_path", "folder_id", pos)
        items = joined.where(F.col("kind") == KIND_ITEM).select(
            rec, "folder_path", "internet_message_id", "internet_message_id_raw", "size_in_bytes", pos)
        quarantine = small[small["kind"] == KIND_QUARANTINE].merge(offsets, on=["file_idx", "block"])
        quarantine = quarantine.assign(file=quarantine["source_file"], line=quarantine["q_line"] + quarantine[
            "line_offset"], reason=quarantine["q_reason"], raw=quarantine["q_raw"])
        quarantine = quarantine.sort_values(["file_idx", "block", "pos"]).reset_index(drop=True)
        for file_idx, count in quarantine.groupby("file_idx").size().items():
            report_of[ordered[int(file_idx)].uri]["records_quarantined"] = int(count)
        quarantine = quarantine[QUARANTINE_COLUMNS].astype({"line": "Int64"})
        parsed = int(splits["s_parsed"].sum()) if len(splits) else 0
        read = int(splits["s_read"].sum()) if len(splits) else 0
        records, conflicts = self._deduplicate(records, ordered, plans)
        return SparkBase(records=records, folders=folders, items=items, quarantine=quarantine, read=read,
                         parsed=parsed, quarantined=len(quarantine), conflicts=conflicts, inputs=reports)

    # --- a saved base (saved_base): the Parquet of a previous run ------------------------------------------

    def _exists(self, uri: str) -> bool:
        try:
            if _is_connect(self.spark):
                self.spark.read.format("text").load(uri).limit(1).collect()
                return True
            jvm, conf = self.spark.sparkContext._jvm, self.spark.sparkContext._jsc.hadoopConfiguration()
            path = jvm.org.apache.hadoop.fs.Path(uri)
            return bool(path.getFileSystem(conf).exists(path))
        except _spark_errors():
            return False  # not a file system Spark knows: read as an input, which says so

    def _saved_base(self, paths: Sequence[str]) -> str | None:
        """The saved base among the inputs, as a Spark path (None: none); it must be the only input."""
        found = []
        for given in paths:
            if not is_uri(given):
                local = saved_base.find_in([given])  # an output folder without base/ is named
                if local is not None:
                    found.append(local.absolute().as_uri())
                continue
            for candidate in (given.rstrip("/"), given.rstrip("/") + "/" + saved_base.FOLDER):
                if self._exists(f"{candidate}/{saved_base.MANIFEST}"):
                    found.append(candidate)
                    break
        if found and len(paths) != 1:
            raise UsageError(f"{found[0]}: a saved base is analysed alone, not with other inputs",
                             hint="analyse the original exports together, or one saved base")
        return found[0] if found else None

    def _text(self, uri: str) -> str:
        try:
            rows = self.spark.read.format("text").option("wholetext", "true").load(uri).collect()
        except _spark_errors() as exc:
            raise UnreadableInput(uri, f"Spark cannot read it: {spark_message(exc)}", hint=saved_base.HINT) from None
        return "".join(row[0] for row in rows)

    def _dataset(self, uri: str, dataset: str, ordered: bool) -> Any:
        """A saved base's dataset, checked; ``ordered``: with ``pos`` (file in name order, then row)."""
        from pyspark.sql import functions as F

        path = f"{uri}/{dataset}"
        try:
            frame = self.spark.read.parquet(path)
            files = frame.inputFiles()
        except _spark_errors() as exc:
            raise UnreadableInput(path, f"Spark cannot read it as Parquet: {spark_message(exc)}",
                                  hint=saved_base.HINT) from None
        if not files:
            raise UnreadableInput(path, "no Parquet files: the saved base is incomplete", hint=saved_base.HINT)
        saved_base.check_columns(path, dataset, {f.name: _family(f.dataType) for f in frame.schema.fields})
        if not ordered:
            return frame
        names = sorted({name.rsplit("/", 1)[-1] for name in files})
        ranks = self.spark.createDataFrame([(unquote(n), i) for i, n in enumerate(names)], "_file string, _rank bigint")
        frame = frame.select("*", F.col("_metadata.file_name").alias("_file"),
                             F.col("_metadata.row_index").alias("_row"))
        return frame.join(F.broadcast(ranks), "_file").withColumn(
            "pos", F.col("_rank") * F.lit(1 << 40) + F.col("_row")).drop("_file", "_rank", "_row")

    def load_base(self, uri: str, display: str) -> SparkBase:
        """A saved base (``saved_base``), checked, as the base relations: nothing is read again."""
        from pyspark.sql import functions as F

        manifest = saved_base.parse_manifest(self._text(f"{uri}/{saved_base.MANIFEST}"),
                                             f"{uri}/{saved_base.MANIFEST}")
        records = self._dataset(uri, "records", ordered=False)
        records = records.select(*BUILT_COLUMNS, "rec", F.col("fingerprint").cast("decimal(20,0)").alias(
            "fingerprint"), "duplicate")
        folders = self._dataset(uri, "folders", ordered=True).select(*FOLDER_ROW_COLUMNS, "pos")
        items = self._dataset(uri, "items", ordered=True).select(*ITEM_ROW_COLUMNS, "pos")
        count = records.count()
        if count != manifest.parsed:
            raise UnreadableInput(f"{uri}/records", f"{count} records, but {saved_base.MANIFEST} says "
                                                    f"{manifest.parsed} were parsed", hint=saved_base.HINT)
        text = self._text(f"{uri}/quarantine.jsonl")
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                entry = json.loads(line)
                rows.append((entry["file"], entry["line"], entry["reason"], entry["raw"]))
            except (ValueError, KeyError, TypeError):
                raise UnreadableInput(f"{uri}/quarantine.jsonl", "not a quarantined record", line=number,
                                      hint=saved_base.HINT) from None
        if len(rows) != manifest.quarantined:
            raise UnreadableInput(f"{uri}/quarantine.jsonl", f"{len(rows)} quarantined records, but "
                                  f"{saved_base.MANIFEST} says {manifest.quarantined}", hint=saved_base.HINT)
        quarantine = pd.DataFrame(rows, columns=QUARANTINE_COLUMNS).astype({"line": "Int64"})
        return SparkBase(records=records, folders=folders, items=items, quarantine=quarantine, read=manifest.read,
                         parsed=manifest.parsed, quarantined=manifest.quarantined, conflicts=manifest.conflicts,
                         inputs=[manifest.report(display)])

    def save_base(self, base: SparkBase, uri: str, put_text: Any) -> None:
        """Keep the base relations as a saved base at ``uri`` (Spark's writers; ``put_text(uri, text)`` writes
        the manifest and the quarantine)."""
        base.records.orderBy("rec").write.mode("overwrite").parquet(f"{uri}/records")
        for name in ("folders", "items"):
            getattr(base, name).orderBy("pos").drop("pos").write.mode("overwrite").parquet(f"{uri}/{name}")
        lines = []
        for row in base.quarantine.to_dict("records"):
            line = None if pd.isna(row["line"]) else int(row["line"])
            lines.append(json.dumps({"file": row["file"], "line": line, "reason": row["reason"], "raw": row["raw"]})
                         + "\n")
        put_text(f"{uri}/quarantine.jsonl", "".join(lines))
        manifest = saved_base.Manifest(base.read, base.parsed, base.quarantined, base.conflicts, base.inputs)
        put_text(f"{uri}/{saved_base.MANIFEST}", manifest.text())

    def _heads_one_by_one(self, files: list[InputFile], reports: list[dict[str, Any]]
                          ) -> tuple[dict[str, list[bytes]], set[str]]:
        """After a failed sniff: each file alone, so that the unreadable ones are named (reported)."""
        heads: dict[str, list[bytes]] = {}
        failed: set[str] = set()
        for file in files:
            try:
                heads.update(self._heads([file]))
            except _spark_errors() as exc:
                failed.add(file.uri)
                reports.append({"path": file.display, "format": None, "records_read": 0, "records_quarantined": 0,
                                "error": f"{file.display}: Spark cannot read it: {spark_message(exc)} "
                                         f"(the Spark engine takes {'; '.join(FORMATS_TAKEN)})"})
        return heads, failed

    # --- de-duplication: dedup.py on the records whose Id repeats ---------------------------------------

    def _deduplicate(self, records: Any, files: list[InputFile], plans: dict[str, tuple[int, FilePlan]]
                     ) -> tuple[Any, list[dict[str, Any]]]:
        from pyspark.sql import functions as F

        key = F.coalesce(F.col("record_id"), F.lit(""))
        repeated = records.groupBy(key.alias("_key")).count().where(F.col("count") > 1).select("_key")
        subset = records.join(F.broadcast(repeated), key == F.col("_key"), "left_semi").orderBy("rec").toPandas()
        if subset.empty:
            return records.withColumn("fingerprint", F.lit(None).cast("decimal(20,0)")).withColumn(
                "duplicate", F.lit(False)), []
        subset = subset.reset_index(drop=True)
        self._fill_texts(subset, files, plans)
        keep, conflicts, fingerprint = deduplicate(subset)
        decided = pd.DataFrame({"rec": subset["rec"].astype("int64"),
                                "fingerprint": [None if pd.isna(v) else str(int(v)) for v in fingerprint],
                                "duplicate": ~keep.to_numpy()})
        frame = self.spark.createDataFrame(decided, "rec bigint, fingerprint string, duplicate boolean")
        frame = frame.withColumn("fingerprint", F.col("fingerprint").cast("decimal(20,0)"))
        records = records.join(F.broadcast(frame), "rec", "left").withColumn(
            "duplicate", F.coalesce(F.col("duplicate"), F.lit(False)))
        return records, conflicts

    def _fill_texts(self, subset: pd.DataFrame, files: list[InputFile], plans: dict[str, tuple[int, FilePlan]]
                    ) -> None:
        """``raw_json`` of the compared records that have none: their text, read back from the input by
        Spark and turned into the record's text by dedup.py's own ``_read_back``."""
        missing = subset["raw_json"].isna() & subset["source_line"].notna()
        if not missing.any():
            return
        by_display = {plans[f.uri][1].display: (f, plans[f.uri][1]) for f in files if f.uri in plans}
        wanted = subset.loc[missing, ["source_file", "source_line"]]
        texts = self._lines_at({(str(s), int(n)) for s, n in wanted.itertuples(index=False)}, by_display)
        subset["raw_json"] = subset["raw_json"].astype(object)
        for index, source, line in zip(wanted.index, wanted["source_file"], wanted["source_line"], strict=True):
            subset.at[index, "raw_json"] = texts.get((str(source), int(line)))
        subset["raw_json"] = subset["raw_json"].astype("string")

    def _lines_at(self, wanted: set[tuple[str, int]], files: dict[str, tuple[InputFile, FilePlan]]
                  ) -> dict[tuple[str, int], str]:
        """The record text at each (file, line) of ``wanted``: the lines picked from their splits by Spark (no
        shuffle), made into the record's text by dedup.py's ``_read_back`` over a sparse local copy."""
        splits: dict[str, list[tuple[int, int]]] = {}  # uri -> [(line offset, split start)] in order
        uri_of = {display: file.uri for display, (file, _) in files.items()}
        for file_idx, offset, block in zip(self._splits["file_idx"], self._splits["line_offset"],
                                           self._splits["block"], strict=True):
            splits.setdefault(self._uris[int(file_idx)], []).append((int(offset), int(block)))
        picks: dict[tuple[str, int], set[int]] = {}
        where: dict[tuple[str, int, int], tuple[str, int]] = {}
        for display, line in wanted:
            uri = uri_of[display]
            offsets = sorted(splits.get(uri, []))
            at = bisect.bisect_left([o for o, _ in offsets], line) - 1
            if at < 0:
                continue
            offset, block = offsets[at]
            picks.setdefault((uri, block), set()).add(line - offset - 1)
            where[(uri, block, line - offset - 1)] = (display, line)
        lines = self._lines(sorted({uri for uri, _ in picks})).select("value", "path", "block")
        schema = "path string, block bigint, idx bigint, value binary"
        rows = lines.mapInArrow(partial(pick_lines, wanted={k: frozenset(v) for k, v in picks.items()}),
                                schema).toArrow().to_pylist()
        by_file: dict[str, dict[int, bytes]] = {}
        for row in rows:
            display, line = where[(row["path"], row["block"], row["idx"])]
            by_file.setdefault(display, {})[line] = row["value"]
        texts: dict[tuple[str, int], str] = {}
        for display, by_line in by_file.items():
            plan = files[display][1]
            fd, name = tempfile.mkstemp(prefix="dedup-", suffix=".txt", dir=self.local_work)
            try:
                # A sparse copy: the prefix (a CSV's header) then each wanted line, numbered anew.
                local: dict[int, int] = {}  # line of the copy -> line of the file
                with os.fdopen(fd, "wb") as handle:
                    handle.write(plan.prefix)
                    for index, number in enumerate(sorted(by_line), start=plan.prefix_lines + 1):
                        handle.write(by_line[number] + b"\n")
                        local[index] = number
                found = _read_back(name, plan.fmt, set(local), hashed=False)
            finally:
                Path(name).unlink(missing_ok=True)
            for index, text in found.items():
                texts[(display, local[index])] = text
        return texts


def _family(kind: Any) -> str:
    """A Spark column type in ``saved_base.check_columns``' words."""
    from pyspark.sql import types as T

    if isinstance(kind, T.StringType):
        return "text"
    if isinstance(kind, (T.LongType, T.IntegerType, T.ShortType, T.ByteType)) or (
            isinstance(kind, T.DecimalType) and kind.scale == 0):
        return "integer"
    if isinstance(kind, T.BooleanType):
        return "boolean"
    if isinstance(kind, T.TimestampType):
        return "UTC time"
    if isinstance(kind, T.NullType):
        return "null"
    return str(kind.simpleString())


def _is_connect(spark: Any) -> bool:
    return type(spark).__module__.startswith("pyspark.sql.connect")


class SparkOutput:
    """``--out`` as a path on the cluster (hdfs://, s3a://, abfss://, file:///...): every output written there by
    Spark, never through this machine's file system. Tables (``NAME.parquet`` and ``NAME.csv``) are folders of
    part files in order, written by Spark's writers; the CSV is made by the local writer's rules
    (``spark_read.csv_text``); summary.json and quarantine.jsonl go through Hadoop's FileSystem API."""

    def __init__(self, uri: str, *, keep_base: bool = False) -> None:
        self.uri = uri.rstrip("/")
        self.keep_base = keep_base
        self.written: dict[str, str] = {}
        self.spark: Any = None

    def bind(self, spark: Any) -> None:
        if _is_connect(spark):
            raise UsageError(f"--out {self.uri}: writing to a URI needs a Spark master, not Spark Connect",
                             hint="give a local --out folder with Spark Connect")
        self.spark = spark

    def frame(self, name: str, frame: Any, *, csv: bool = True) -> None:
        """Write the ordered ``frame`` as ``name``.parquet (and ``name``.csv)."""
        errors = _spark_errors()
        target = f"{self.uri}/{name}.parquet"
        try:
            frame.write.mode("overwrite").parquet(target)
            self.written[f"{name}.parquet"] = target
            if csv:
                columns = list(frame.columns)
                text = frame.mapInArrow(partial(csv_text, columns=columns),
                                        ", ".join(f"`{c}` string" for c in columns))
                target = f"{self.uri}/{name}.csv"
                (text.write.mode("overwrite").option("header", "true").option("escape", '"')
                 .option("emptyValue", '""').csv(target))
                self.written[f"{name}.csv"] = target
        except errors as exc:
            raise ExportError(f"{target}: Spark cannot write it: {spark_message(exc)}") from None

    def put_text(self, uri: str, text: str) -> None:
        """A small file through Hadoop's FileSystem API (in the JVM): never this machine's file system."""
        try:
            jvm, conf = self.spark.sparkContext._jvm, self.spark.sparkContext._jsc.hadoopConfiguration()
            path = jvm.org.apache.hadoop.fs.Path(uri)
            stream = path.getFileSystem(conf).create(path, True)
            try:
                data = text.encode("utf-8")
                for start in range(0, len(data), 1 << 20):
                    stream.write(bytearray(data[start:start + (1 << 20)]))
            finally:
                stream.close()
        except _spark_errors() as exc:
            raise ExportError(f"{uri}: Spark cannot write it: {spark_message(exc)}") from None

    def finish(self, result: Any) -> dict[str, str]:
        lines = []
        for row in result.quarantine.to_dict("records"):
            line = None if pd.isna(row["line"]) else int(row["line"])
            lines.append(json.dumps({"file": row["file"], "line": line, "reason": row["reason"], "raw": row["raw"]},
                                    ensure_ascii=False) + "\n")
        for name, text in (("quarantine.jsonl", "".join(lines)),
                           ("summary.json", json.dumps(result.summary, indent=2, ensure_ascii=False, default=str)
                            + "\n")):
            self.put_text(f"{self.uri}/{name}", text)
            self.written[name] = f"{self.uri}/{name}"
        return dict(self.written)


def _active_session() -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    return SparkSession.getActiveSession()


def _on_this_machine(spark: Any, master: str) -> bool:
    """Whether the executors run here (a local master, or Spark Connect to this machine)."""
    if master.startswith("sc://"):
        return urlparse(master).hostname in ("localhost", "127.0.0.1", "::1")
    try:
        return str(spark.sparkContext.master).startswith("local")
    except Exception:  # a Spark Connect session has no SparkContext
        return False


def _ship_package(spark: Any, folder: Path) -> None:
    """This package, zipped, to the executors of a cluster (they need pyarrow and pandas, as pyspark's Arrow
    functions do)."""
    package = Path(__file__).resolve().parents[2]
    archive = shutil.make_archive(str(folder / "mia_bridge"), "zip", root_dir=package.parent, base_dir=package.name)
    if type(spark).__module__.startswith("pyspark.sql.connect"):
        spark.addArtifacts(archive, pyfile=True)
    else:
        spark.sparkContext.addPyFile(archive)


def _offsets(splits: pd.DataFrame) -> pd.DataFrame:
    """Per split: the file lines before it and the parsed records before it (input order)."""
    frame = splits.sort_values(["file_idx", "block"]).reset_index(drop=True)
    frame["line_offset"] = frame.groupby("file_idx")["s_lines"].cumsum() - frame["s_lines"]
    frame["rec_offset"] = frame["s_parsed"].cumsum() - frame["s_parsed"]
    frame["split_no"] = range(len(frame))
    return frame[["file_idx", "block", "line_offset", "rec_offset", "split_no"]].astype("int64").astype(
        {"file_idx": "int32"})


# --- the analysis: analysis/sql on Spark ------------------------------------------------------------------

# Read by later statements: computed once (Spark would otherwise recompute a view at every use).
PERSISTED = ("events", "synced_folders", "throttled_windows", "contexts")


def spark_sql(statement: str) -> str:
    """A statement of analysis/sql (DuckDB dialect) in Spark's: the one dialect step, through sqlglot."""
    import sqlglot

    return str(sqlglot.transpile(statement, read="duckdb", write="spark")[0])


def _to_schema(table: pa.Table | pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """Spark's Arrow (microsecond times, 32-bit row numbers, decimal(20,0) fingerprints) as the schema the
    embedded engine writes."""
    columns = []
    for target in schema:
        column = table.column(target.name)
        if pa.types.is_decimal(column.type) and pa.types.is_unsigned_integer(target.type):
            column = column.cast(pa.uint64(), safe=False) if len(column) else pa.array([], pa.uint64())
        columns.append(column.cast(target.type))
    return pa.Table.from_arrays(columns, schema=schema)


class SparkAnalysis:
    """Runs analysis/sql over a ``SparkBase`` (``EmbeddedEngine.run``'s counterpart: same statements, same
    results, same ``EngineResult``)."""

    def __init__(self, engine: SparkEngine) -> None:
        self.engine = engine
        self.spark = engine.spark

    def _base_views(self, base: SparkBase) -> None:
        # Views over the read records (written once, as Parquet, by ``ingest``): projections and broadcast
        # joins of small tables, cheaper to recompute than to write again.
        for name, frame in (("records", base.records), ("folders", base.folders), ("items", base.items)):
            frame.createOrReplaceTempView(name)

    def _parameters(self, params: Any) -> None:
        from mia_bridge.analysis.engines.embedded import _utc

        start, end = _utc(params.start), _utc(params.end)
        self.spark.createDataFrame(
            [(None if start is None else start.to_pydatetime(), None if end is None else end.to_pydatetime())],
            "start_time timestamp, end_time timestamp").createOrReplaceTempView("period")
        self.spark.createDataFrame([tuple(v) for v in params.option_values] or [],
                                   "list string, value string").createOrReplaceTempView("option_values")
        self.spark.createDataFrame([tuple(r) for r in params.lookup_requests or []],
                                   "entry_no bigint, requested_as string, mailbox string, internet_message_id string"
                                   ).createOrReplaceTempView("lookup_requests")

    def _query(self, statement: str, output: str) -> Any:
        from mia_bridge.analysis import sql
        from mia_bridge.analysis.schema import ARROW_SCHEMAS

        columns = ", ".join(f"`{c}`" for c in ARROW_SCHEMAS[output].names)
        order = sql.order_by(statement)
        return self.spark.sql(f"SELECT {columns} FROM {statement}" + (f" ORDER BY {order}" if order else ""))

    def _batches(self, frame: Any, output: str) -> Iterator[pa.RecordBatch]:
        """The ordered result a batch at a time: on a local master through Parquet parts in the driver's work
        folder (never whole in memory), else collected."""
        from mia_bridge.analysis.schema import ARROW_SCHEMAS

        schema = ARROW_SCHEMAS[output]
        if self.engine.local:
            folder = self.engine.local_work / f"out-{output}"
            frame.write.mode("overwrite").parquet(folder.as_uri())
            for part in sorted(folder.glob("part-*.parquet")):
                for batch in pq.ParquetFile(part).iter_batches(batch_size=131_072):
                    yield from _to_schema(batch, schema).to_batches()
            return
        yield from _to_schema(frame.toArrow(), schema).to_batches(max_chunksize=131_072)

    def _streamed(self, output: str, sink: Any) -> Path:
        from mia_bridge.analysis.engines.embedded import STREAMED
        from mia_bridge.analysis.schema import ARROW_SCHEMAS

        schema = ARROW_SCHEMAS[output]
        batches = self._batches(self._query(STREAMED[output], output), output)
        if sink is not None:
            return Path(sink.stream(output, batches, schema, csv=output != "records"))
        path = self.engine.local_work / f"{output}.parquet"
        with pq.ParquetWriter(path, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        return path

    def _whole(self, output: str, limit: int | None = None) -> pa.Table:
        from mia_bridge.analysis.schema import ARROW_SCHEMAS

        query = self._query(output, output)
        return _to_schema((query if limit is None else query.limit(limit)).toArrow(), ARROW_SCHEMAS[output])

    def run(self, base: SparkBase, params: Any, sink: Any = None) -> Any:
        from mia_bridge.analysis import sql
        from mia_bridge.analysis.engines.embedded import OUTPUT_OF, STREAMED, TOP_LEADS, EngineResult

        self._base_views(base)
        self._parameters(params)
        files: dict[str, Path] = {}
        tables: dict[str, pa.Table] = {}
        remote = isinstance(sink, SparkOutput)
        for name in sql.ORDER:
            if name in ("summary_counts", "summary_lists"):
                continue
            if name == "message_lookup" and params.lookup_requests is None:
                continue
            output = OUTPUT_OF.get(name, name)
            frame = self.spark.sql(spark_sql(sql.body(name)))
            # a table fetched whole and also written by Spark (the lookup, remote --out) is computed once too
            if name in PERSISTED or (remote and output not in STREAMED):
                frame = frame.persist()
            frame.createOrReplaceTempView(name)
            if output in STREAMED:  # as the embedded engine: never whole on the driver
                if remote:
                    sink.frame(output, self._query(name, output), csv=output != "records")
                else:
                    files[output] = self._streamed(output, sink)
            else:
                tables[name] = self._whole(name)
                if remote:
                    sink.frame(name, self._query(name, name).coalesce(1))
                elif sink is not None:
                    sink.table(name, tables[name])
        top_leads = self._whole("leads", TOP_LEADS)
        row = self.spark.sql(spark_sql(sql.statement("summary_counts"))).toArrow().to_pylist()[0]
        lists: dict[str, list[tuple[str, int]]] = {}
        for entry in self.spark.sql(spark_sql(sql.statement("summary_lists"))).toArrow().to_pylist():
            lists.setdefault(entry["list"], []).append((entry["value"], int(entry["n"])))
        return EngineResult(files, tables, top_leads, row, lists)


def _put_local(uri: str, text: str) -> None:
    write_text(Path(unquote(urlparse(uri).path)), text)


def analyze_files_spark(paths: Sequence[str], options: Any, writer: Any = None, *,
                        master: str = DEFAULT_MASTER, spark: Any = None) -> Any:
    """``api.analyze_files`` on Spark: the same ``AnalysisResult`` (and outputs through ``writer``)."""
    from mia_bridge.analysis.api import InputReport, _parameters, result_of

    work = tempfile.TemporaryDirectory(prefix="mia-spark-")
    own = spark is None and _active_session() is None  # stopped at the end only when this call started it
    try:
        local_work = Path(work.name)
        spark = spark if spark is not None else session(master)
        here = _on_this_machine(spark, master)
        if not here:
            _ship_package(spark, local_work)
        # The work folder (the read records, the base tables, spill) must be reachable by every executor: on
        # a cluster, a path on the cluster's file system (MIA_SPARK_WORK, e.g. hdfs:///tmp/mia).
        shared = os.environ.get(WORK_ENV) or (local_work / "shared").as_uri()
        engine = SparkEngine(spark, shared.rstrip("/") + f"/{local_work.name}", local_work / "driver",
                             local=here and not os.environ.get(WORK_ENV))
        remote = writer if isinstance(writer, SparkOutput) else None
        try:
            if remote is not None:
                remote.bind(spark)
            base = engine.ingest([str(p) for p in paths], options.format, options.max_record_bytes)
            run = SparkAnalysis(engine).run(base, _parameters(options), writer)
            reports = [InputReport(**r) for r in base.inputs]
            result = result_of(run, base, base.quarantine, options, reports, work)
            if remote is not None:
                if remote.keep_base:
                    engine.save_base(base, f"{remote.uri}/{saved_base.FOLDER}", remote.put_text)
                    remote.written[saved_base.FOLDER] = f"{remote.uri}/{saved_base.FOLDER}"
                remote.finish(result)
            elif writer is not None and getattr(writer, "keep_base", False):
                target = make_dir(Path(writer.out_dir) / saved_base.FOLDER)
                engine.save_base(base, target.as_uri(), _put_local)
                writer.written[saved_base.FOLDER] = target
        except _spark_errors() as exc:
            raise MiaError(f"Spark failed: {spark_message(exc)}") from None
        finally:
            if own:
                spark.stop()
        return result
    except BaseException:
        work.cleanup()
        raise

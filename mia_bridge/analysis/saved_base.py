"""A run's base tables, kept as its Parquet: ``mia analyze --keep-base`` writes them to ``OUT/base``, and
``mia analyze OUT`` (or ``OUT/base``) analyses them again instead of raw exports, on either engine.

The base tables (``base_tables``) are everything the analysis reads: every parsed record (duplicates marked,
not dropped), the folders and the accessed items of each record, the quarantined records, and the counts
of the reading (records read, parsed, quarantined; the Id conflicts). The outputs of a run are not enough
to redo it: records.parquet holds only the unique records, and items.parquet / synced_folders.parquet only
what the run's period kept, without the record each row belongs to. Analysing a saved base gives the same
summary.json and tables as analysing the original inputs, with any period, lookup and lead options;
the one difference is ``inputs`` in summary.json, which names the base folder (format ``mia-base``), while
records.parquet, events and items still name the original files and lines (``source_file``/``source_line``).

Layout of ``OUT/base``:

- ``base.json``: ``{"format": "mia-base-tables", "version": 1, "records_read", "records_parsed",
  "records_quarantined", "id_conflicts": [...], "inputs": [...]}`` (``inputs``: the original run's inputs);
- ``records/``, ``folders/``, ``items/``: Parquet files, read in name order (which is input order);
  columns as ``base_tables`` lists them, times in microseconds (Spark reads no nanosecond times);
- ``quarantine.jsonl``: one object per quarantined record (file, line, reason, raw).

Everything is checked before it is used: a missing or malformed manifest, a missing dataset, a column
missing or of the wrong type, counts that do not reconcile (records rows = records_parsed, quarantine lines
= records_quarantined, read = parsed + quarantined) stop the run with one error naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mia_bridge.analysis.base_tables import BaseTables
from mia_bridge.analysis.intake import BUILT_COLUMNS, FOLDER_ROW_COLUMNS, ITEM_ROW_COLUMNS
from mia_bridge.analysis.schema import RECORD_COLUMNS
from mia_bridge.errors import UnreadableInput, UsageError
from mia_bridge.safe_files import make_dir, open_private, write_text

FOLDER = "base"
MANIFEST = "base.json"
KIND = "mia-base-tables"
VERSION = 1
FORMAT_NAME = "mia-base"  # the format summary.json's inputs give a saved base
DATASETS = ("records", "folders", "items")
HINT = ("a saved base is the folder `mia analyze --keep-base --out OUT` wrote (OUT or OUT/base); write it "
        "again from the original exports")

_FAMILY = {"string": "text", "Int64": "integer", "boolean": "boolean", "datetime64[ns, UTC]": "UTC time"}
# dataset -> column -> type family ("integer" takes a decimal with no fraction: Spark's 64-bit unsigned)
REQUIRED: dict[str, dict[str, str]] = {
    "records": {**{c: _FAMILY[RECORD_COLUMNS[c]] for c in BUILT_COLUMNS}, "rec": "integer",
                "fingerprint": "integer", "duplicate": "boolean"},
    "folders": {c: "integer" if c == "rec" else "text" for c in FOLDER_ROW_COLUMNS},
    "items": {c: "integer" if c in ("rec", "size_in_bytes") else "text" for c in ITEM_ROW_COLUMNS},
}


@dataclass(frozen=True)
class Manifest:
    read: int
    parsed: int
    quarantined: int
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)

    def text(self) -> str:
        return json.dumps({"format": KIND, "version": VERSION, "records_read": self.read,
                           "records_parsed": self.parsed, "records_quarantined": self.quarantined,
                           "id_conflicts": self.conflicts, "inputs": self.inputs},
                          indent=2, ensure_ascii=False, default=str) + "\n"

    def report(self, display: str) -> dict[str, Any]:
        """The entry for summary.json's ``inputs``: the base folder read as one input."""
        return {"path": display, "format": FORMAT_NAME, "records_read": self.read,
                "records_quarantined": self.quarantined, "error": None}


def parse_manifest(text: str, where: str) -> Manifest:
    """``base.json``'s text, checked; ``UnreadableInput`` naming ``where`` when it is not one."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UnreadableInput(where, f"not a saved base's manifest (invalid JSON: {exc})", hint=HINT) from None
    if not isinstance(data, dict) or data.get("format") != KIND:
        raise UnreadableInput(where, f"not a saved base's manifest (no \"format\": \"{KIND}\")", hint=HINT)
    if data.get("version") != VERSION:
        raise UnreadableInput(where, f"saved base version {data.get('version')!r}: this mia reads version "
                                     f"{VERSION}", hint=HINT)
    counts = {}
    for key in ("records_read", "records_parsed", "records_quarantined"):
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UnreadableInput(where, f"{key} is {value!r}, not a count", hint=HINT)
        counts[key] = value
    if counts["records_read"] != counts["records_parsed"] + counts["records_quarantined"]:
        raise UnreadableInput(where, f"counts do not reconcile: records_read {counts['records_read']} != "
                                     f"records_parsed {counts['records_parsed']} + records_quarantined "
                                     f"{counts['records_quarantined']}", hint=HINT)
    conflicts, inputs = data.get("id_conflicts"), data.get("inputs")
    for key, value in (("id_conflicts", conflicts), ("inputs", inputs)):
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise UnreadableInput(where, f"{key} is not a list of objects", hint=HINT)
    return Manifest(counts["records_read"], counts["records_parsed"], counts["records_quarantined"],
                    list(conflicts), list(inputs))  # type: ignore[arg-type]


def check_columns(where: str, dataset: str, found: Mapping[str, str]) -> None:
    """``found`` (column -> type family, ``arrow_family``'s words) against what ``dataset`` needs."""
    problems = []
    for column, family in REQUIRED[dataset].items():
        if column not in found:
            problems.append(f"column {column} is missing")
        elif found[column] not in (family, "null"):
            problems.append(f"column {column} is {found[column]}, not {family}")
    if problems:
        raise UnreadableInput(where, f"not a saved base's {dataset} table: " + "; ".join(problems[:5])
                              + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""), hint=HINT)


def arrow_family(kind: pa.DataType) -> str:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    if pa.types.is_integer(kind) or (pa.types.is_decimal(kind) and kind.scale == 0):
        return "integer"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_timestamp(kind) and kind.tz in ("UTC", "+00:00", "Etc/UTC"):
        return "UTC time"
    if pa.types.is_null(kind):
        return "null"
    return str(kind)


def find(path: Path) -> Path | None:
    """The saved base ``path`` names (the base folder itself, or an output folder holding ``base/``)."""
    if (path / MANIFEST).is_file():
        return path
    if (path / FOLDER / MANIFEST).is_file():
        return path / FOLDER
    return None


def find_in(paths: list[Path] | list[str]) -> Path | None:
    """The saved base among the inputs (None: there is none); a saved base must be the only input."""
    saved = [found for p in paths if Path(p).is_dir() and (found := find(Path(p))) is not None]
    if not saved:
        for path in map(Path, paths):
            if (path / "summary.json").is_file() and (path / "records.parquet").exists():
                raise UnreadableInput(str(path), "the output folder of a run without --keep-base: its tables "
                                      "alone cannot be analysed again", hint=HINT)
        return None
    if len(paths) != 1:
        raise UsageError(f"{saved[0]}: a saved base is analysed alone, not with other inputs",
                         hint="analyse the original exports together, or one saved base")
    return saved[0]


def _parquet_files(folder: Path, dataset: str) -> list[Path]:
    files = sorted((folder / dataset).glob("*.parquet")) if (folder / dataset).is_dir() else []
    if not files:
        raise UnreadableInput(str(folder / dataset), "no Parquet files: the saved base is incomplete", hint=HINT)
    return files


def load(folder: Path) -> tuple[BaseTables, Manifest]:
    """A saved base on this machine as the embedded engine's ``BaseTables`` (checked, nothing copied)."""
    manifest_path = folder / MANIFEST
    try:
        manifest = parse_manifest(manifest_path.read_text(encoding="utf-8"), str(manifest_path))
    except (OSError, UnicodeError) as exc:
        raise UnreadableInput(str(manifest_path), f"cannot read it: {exc}", hint=HINT) from None
    rows = {}
    for dataset in DATASETS:
        rows[dataset] = 0
        for part in _parquet_files(folder, dataset):
            try:
                meta = pq.read_metadata(part)
                schema = meta.schema.to_arrow_schema()
            except (OSError, pa.ArrowException) as exc:
                raise UnreadableInput(str(part), f"not a Parquet file: {exc}", hint=HINT) from None
            check_columns(str(part), dataset, {f.name: arrow_family(f.type) for f in schema})
            rows[dataset] += meta.num_rows
    if rows["records"] != manifest.parsed:
        raise UnreadableInput(str(folder / "records"), f"{rows['records']} records, but {MANIFEST} says "
                                                       f"{manifest.parsed} were parsed", hint=HINT)
    quarantine = folder / "quarantine.jsonl"
    try:
        with open(quarantine, encoding="utf-8") as handle:
            lines = sum(1 for _ in handle)
    except (OSError, UnicodeError) as exc:
        raise UnreadableInput(str(quarantine), f"cannot read it: {exc}", hint=HINT) from None
    if lines != manifest.quarantined:
        raise UnreadableInput(str(quarantine), f"{lines} quarantined records, but {MANIFEST} says "
                                               f"{manifest.quarantined}", hint=HINT)
    base = BaseTables(records=folder / "records", folders=folder / "folders", items=folder / "items",
                      quarantine=quarantine, read=manifest.read, parsed=manifest.parsed,
                      quarantined=manifest.quarantined, conflicts=manifest.conflicts)
    return base, manifest


def _copy_part(source: Path, target: Path) -> None:
    """A dataset part into the saved base: linked when it can be (same file system), else copied."""
    try:
        os.link(source, target)
    except OSError:
        with open(source, "rb") as src, open_private(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def save(base: BaseTables, inputs: list[dict[str, Any]], out_dir: Path) -> Path:
    """Keep the embedded engine's base tables as ``out_dir/base`` (records rewritten with microsecond times;
    folders and items linked or copied as they are)."""
    target = make_dir(out_dir / FOLDER)
    for dataset in DATASETS:
        folder = make_dir(target / dataset)
        for part in sorted(Path(getattr(base, dataset)).glob("*.parquet")):
            if dataset == "records":
                table = pq.read_table(part)
                try:
                    with open_private(folder / part.name, "wb") as sink:
                        pq.write_table(table, sink, compression="lz4", coerce_timestamps="us",
                                       allow_truncated_timestamps=False)
                except pa.ArrowInvalid:
                    # A time finer than a microsecond is kept, never rounded: the embedded engine reads it
                    # (Spark refuses the part, in one line naming it).
                    with open_private(folder / part.name, "wb") as sink:
                        pq.write_table(table, sink, compression="lz4")
            else:
                _copy_part(part, folder / part.name)
    _copy_part(Path(base.quarantine), target / "quarantine.jsonl")
    manifest = Manifest(base.read, base.parsed, base.quarantined, list(base.conflicts), inputs)
    write_text(target / MANIFEST, manifest.text())
    return target

"""``CASE/manifest.json``: what was collected, how, and the SHA-256 of every file in the case.

Other steps (exports, reports) register the files they write with ``add_files`` so that
``mia verify`` checks them too. Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mia_bridge.errors import ManifestError, UsageError

MANIFEST_NAME = "manifest.json"
FORMAT = "mia-bridge-case/1"
_LOCK = threading.Lock()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(case_dir: Path) -> dict[str, Any]:
    path = Path(case_dir) / MANIFEST_NAME
    if not path.exists():
        raise ManifestError(f"{path}: no manifest", hint="is this a case folder written by mia collect?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: manifest is unreadable: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("files"), dict):
        raise ManifestError(f"{path}: not a mia-bridge case manifest (format {FORMAT})")
    return data


def _load_or_new(case_dir: Path) -> dict[str, Any]:
    if (case_dir / MANIFEST_NAME).exists():
        return load_manifest(case_dir)
    return {"format": FORMAT, "created": _now(), "files": {}}


def _save(case_dir: Path, data: dict[str, Any]) -> Path:
    data["updated"] = _now()
    path = case_dir / MANIFEST_NAME
    tmp = path.with_name(f".{MANIFEST_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _now() -> str:
    return datetime.now(tz=UTC).isoformat()


def _relative(case_dir: Path, path: Path) -> str:
    full = path if path.is_absolute() else case_dir / path
    try:
        return full.resolve().relative_to(case_dir.resolve()).as_posix()
    except ValueError:
        raise UsageError(f"{path} is outside the case folder {case_dir}") from None


def file_entry(case_dir: Path, rel: str, *, kind: str, records: int | None = None) -> dict[str, Any]:
    path = case_dir / rel
    entry: dict[str, Any] = {"kind": kind, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    if records is not None:
        entry["records"] = records
    return entry


def add_files(
    case_dir: Path, paths: Iterable[Path | str], *, kind: str = "output", records: dict[str, int] | None = None
) -> Path:
    """Register (or rehash) files inside the case folder; ``records`` maps a path to its line count."""
    case_dir = Path(case_dir)
    with _LOCK:
        data = _load_or_new(case_dir)
        counts = {_relative(case_dir, Path(k)): v for k, v in (records or {}).items()}
        for p in paths:
            rel = _relative(case_dir, Path(p))
            data["files"][rel] = file_entry(case_dir, rel, kind=kind, records=counts.get(rel))
        return _save(case_dir, data)


def rehash(case_dir: Path) -> Path:
    """Recompute every registered file's hash (after a deliberate regeneration)."""
    case_dir = Path(case_dir)
    with _LOCK:
        data = load_manifest(case_dir)
        for rel, entry in data["files"].items():
            data["files"][rel] = file_entry(case_dir, rel, kind=entry.get("kind", "output"),
                                            records=entry.get("records"))
        return _save(case_dir, data)


def update_section(case_dir: Path, section: str, key: str, value: Any) -> Path:
    """Set ``manifest[section][key] = value`` (e.g. a step's status), keeping everything else."""
    case_dir = Path(case_dir)
    with _LOCK:
        data = _load_or_new(case_dir)
        data.setdefault(section, {})[key] = value
        return _save(case_dir, data)


def record_collection(
    case_dir: Path,
    *,
    tool_version: str,
    backend: dict[str, Any],
    options: dict[str, Any],
    ingestion: dict[str, Any],
    started: datetime,
    finished: datetime,
    queries: dict[str, dict[str, Any]],
    files: dict[Path, int],
    side_files: Iterable[Path] = (),
) -> Path:
    """Record one collection run: its queries, and the evidence files with hashes and record counts."""
    case_dir = Path(case_dir)
    with _LOCK:
        data = _load_or_new(case_dir)
        data["tool"] = {"name": "mia-bridge", "version": tool_version}
        data["backend"] = backend
        collection = data.setdefault("collection", {"runs": [], "queries": {}})
        collection["runs"].append({
            "started": started.isoformat(), "finished": finished.isoformat(), "options": options,
            "ingestion": ingestion, "queries": sorted(queries),
        })
        collection["queries"].update(queries)
        for path, records in files.items():
            if path.exists():
                rel = _relative(case_dir, path)
                data["files"][rel] = file_entry(case_dir, rel, kind="evidence", records=records)
        for path in side_files:
            if path.exists():
                rel = _relative(case_dir, path)
                with path.open("rb") as fh:
                    lines = sum(1 for _ in fh)
                data["files"][rel] = file_entry(case_dir, rel, kind="evidence-unparsed", records=lines)
        return _save(case_dir, data)

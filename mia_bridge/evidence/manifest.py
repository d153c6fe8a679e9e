"""``CASE/manifest.json``: what was collected, how, and the SHA-256 of every file in the case.

Other steps (exports, reports) register the files they write with ``add_files`` so that
``mia verify`` checks them too; each entry carries its label from the case layout (raw evidence, chain of
custody, derived: ``mia_bridge.evidence.layout``). Writes are atomic (temporary file, then rename), private (0600) and
never through a symlink; every registered file is made private too. With a case key (``seal``), every
save also signs the manifest (``manifest.hmac``).
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
from mia_bridge.evidence import seal
from mia_bridge.evidence.layout import MANIFEST_NAME, label_of
from mia_bridge.evidence.store import count_lines
from mia_bridge.safe_files import make_dir, make_private, write_text

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
    make_dir(case_dir)
    path = case_dir / MANIFEST_NAME
    tmp = path.with_name(f".{MANIFEST_NAME}.{os.getpid()}.tmp")
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    write_text(tmp, text)
    os.replace(tmp, path)  # replaces a link planted at the manifest's name instead of writing through it
    seal.sign(case_dir, text.encode("utf-8"))
    return path


def manifest_sha256(case_dir: Path) -> str | None:
    """SHA-256 of ``manifest.json`` as it is now: the seal a third party pins (None without a manifest)."""
    path = Path(case_dir) / MANIFEST_NAME
    return sha256_file(path) if path.is_file() else None


def registered(case_dir: Path) -> dict[str, tuple[int, str]]:
    """Relative path -> (bytes, SHA-256) of every file the manifest lists as complete ({} without a manifest).
    Partial evidence (a query interrupted mid-commit may have registered bytes its journal never got) is left
    out: the journal's own SHA-256 vouches for it."""
    if not (Path(case_dir) / MANIFEST_NAME).exists():
        return {}
    files = load_manifest(case_dir)["files"]
    return {rel: (int(e.get("bytes", 0)), str(e.get("sha256", ""))) for rel, e in files.items()
            if isinstance(e, dict) and e.get("kind") != "evidence-partial"}


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
    make_private(path)  # whoever wrote it (pyarrow, openpyxl, jinja2), a registered file is 0600
    entry: dict[str, Any] = {"kind": kind, "label": label_of(rel).value, "bytes": path.stat().st_size,
                             "sha256": sha256_file(path)}
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
    resumed: dict[str, dict[str, Any]] | None = None,
    state_files: Iterable[Path] = (),
    refused: str | None = None,
    partial_files: Iterable[Path] = (),
) -> Path:
    """Record one collection run: its queries, and the evidence files with hashes and record counts."""
    case_dir = Path(case_dir)
    with _LOCK:
        data = _load_or_new(case_dir)
        data["tool"] = {"name": "mia-bridge", "version": tool_version}
        data["backend"] = backend
        collection = data.setdefault("collection", {"runs": [], "queries": {}})
        run: dict[str, Any] = {
            "started": started.isoformat(), "finished": finished.isoformat(), "options": options,
            "ingestion": ingestion, "queries": sorted(queries),
        }
        if resumed:
            run["resumed"] = resumed  # each resume: what the journal claimed, how it was verified, what was cut
        if refused:
            run["resume_refused"] = refused  # the journal did not match the evidence: nothing was trusted or cut
        collection["runs"].append(run)
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
        for path in partial_files:  # what a query that did not finish had committed (a rerun completes it)
            if path.is_file() and not path.is_symlink():
                rel = _relative(case_dir, path)
                data["files"][rel] = file_entry(case_dir, rel, kind="evidence-partial", records=count_lines(path))
        for path in state_files:  # the resume journal: chain of custody, rechecked like the rest
            if path.is_file():
                rel = _relative(case_dir, path)
                data["files"][rel] = file_entry(case_dir, rel, kind="state")
        return _save(case_dir, data)

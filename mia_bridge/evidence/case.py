"""``Case``: one case folder, its paths (``mia_bridge.evidence.layout``), its writes and its manifest.

Every file a command writes into the case is named by the layout (``case.path(EXPOSED_NAME)``), written
through ``write_json`` / ``write_csv`` (private, never through a link, a clear error naming the file when it
cannot be written) and registered in the manifest with its label (``case.register``), so ``mia verify``
checks it and a reader of the manifest knows what may be shared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mia_bridge.csv_safety import write_dicts
from mia_bridge.errors import ExportError
from mia_bridge.evidence import manifest
from mia_bridge.evidence.layout import (
    ANALYSIS_DIR,
    DIRECTORY_DIR,
    ENRICH_DIR,
    ENRICH_RAW_DIR,
    EVIDENCE_DIR,
    LAYOUT,
    SPARROW_DIR,
    STATE_DIR,
    Entry,
    Label,
    entry_of,
    label_of,
)
from mia_bridge.safe_files import make_dir, write_text

__all__ = ["LAYOUT", "Case", "Entry", "Label", "write_csv", "write_json"]


def write_json(path: Path, data: Any) -> Path:
    """``data`` as indented UTF-8 JSON, private; an ExportError naming the file when it cannot be written."""
    try:
        write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    except OSError as exc:
        raise ExportError(f"{path}: cannot write: {exc.strerror or exc}", path=str(path)) from None
    return path


def write_csv(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> int:
    """A CSV with ``columns`` (formula-safe, private); returns the rows written."""
    try:
        count = write_dicts(path, columns, rows)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write: {exc.strerror or exc}", path=str(path)) from None
    return count


class Case:
    """One case folder: the paths the layout names, writes into it and their registration in the manifest."""

    def __init__(self, folder: Path) -> None:
        # absolute: the collector's manifest joins relative evidence paths onto the case folder again
        self.folder = Path(folder).resolve()

    def create(self) -> Case:
        make_dir(self.folder)  # 0700: the case holds mail subjects and addresses
        return self

    def path(self, name: str) -> Path:
        """The path of ``name`` (a file or folder the layout names, or a file inside such a folder)."""
        if entry_of(name) is None and entry_of(name.rstrip("/") + "/") is None:
            raise ValueError(f"{name}: not part of the case folder's layout (mia_bridge/evidence/layout.py)")
        return self.folder / name

    @property
    def evidence_dir(self) -> Path:
        return self.folder / EVIDENCE_DIR

    @property
    def directory_dir(self) -> Path:
        return self.folder / DIRECTORY_DIR

    @property
    def state_dir(self) -> Path:
        return self.folder / STATE_DIR

    @property
    def analysis_dir(self) -> Path:
        return self.folder / ANALYSIS_DIR

    @property
    def sparrow_dir(self) -> Path:
        return self.folder / SPARROW_DIR

    @property
    def enrich_dir(self) -> Path:
        return self.folder / ENRICH_DIR

    @property
    def enrich_raw_dir(self) -> Path:
        return self.folder / ENRICH_RAW_DIR

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.folder).as_posix()

    def label(self, path: Path) -> Label:
        return label_of(self.relative(path))

    def entry(self, path: Path) -> Entry | None:
        return entry_of(self.relative(path))

    def write_json(self, name: str, data: Any) -> Path:
        return write_json(self.path(name), data)

    def register(self, paths: Iterable[Path], *, kind: str, records: dict[str, int] | None = None) -> list[Path]:
        """Hash ``paths`` into the manifest (each with its label); returns those that exist."""
        present = [p for p in paths if p.exists()]
        if present:
            manifest.add_files(self.folder, present, kind=kind, records=records)
        return present

    def update_record(self, section: str, key: str, value: Any) -> None:
        manifest.update_section(self.folder, section, key, value)

    def has_manifest(self) -> bool:
        return (self.folder / manifest.MANIFEST_NAME).exists()

    def manifest(self) -> dict[str, Any]:
        return manifest.load_manifest(self.folder)

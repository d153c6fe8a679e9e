"""``mia verify``: recheck every registered file's size, SHA-256 and record count, and the counts; report
files the manifest does not list; refuse manifest paths that are absolute or leave the case; give the
manifest's own SHA-256 (the seal to pin) and check its signature when a case key is given."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from mia_bridge.evidence import seal
from mia_bridge.evidence.manifest import MANIFEST_NAME, load_manifest, sha256_file
from mia_bridge.evidence.store import count_lines

# the manifest and its signature cannot list themselves
_SELF = {MANIFEST_NAME, seal.SIGNATURE_NAME}


@dataclass
class VerifyReport:
    case_dir: Path
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    manifest_sha256: str = ""
    signature: str = "unsigned"  # valid | unsigned | not checked (signed, no key given) | invalid

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"case": str(self.case_dir), "ok": self.ok, "manifest_sha256": self.manifest_sha256,
                "signature": self.signature, "checked": self.checked, "unlisted": self.unlisted,
                "problems": self.problems}


def _unsafe(rel: str) -> str | None:
    """Why a manifest path must not be opened (absolute, a drive, ``..``), or None."""
    if not rel or "\x00" in rel:
        return "empty or NUL in the path"
    posix, windows = PurePosixPath(rel), PureWindowsPath(rel)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or rel.startswith(("/", "\\")):
        return "absolute path"
    if ".." in posix.parts or ".." in windows.parts:
        return "leaves the case folder (..)"
    return None


def _inside(case_dir: Path, path: Path) -> bool:
    """``path`` (links resolved) is inside ``case_dir``."""
    try:
        path.resolve().relative_to(case_dir.resolve())
    except (ValueError, OSError):
        return False
    return True


def verify_case(case_dir: Path | str) -> VerifyReport:
    """Check the case folder against its manifest. Raises ManifestError if there is no usable manifest."""
    case_dir = Path(case_dir)
    data = load_manifest(case_dir)
    report = VerifyReport(case_dir)
    manifest_bytes = (case_dir / MANIFEST_NAME).read_bytes()
    report.manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
    report.signature, problem = seal.check(case_dir, manifest_bytes)
    if problem:
        report.problems.append(problem)
    for rel, entry in sorted(data["files"].items()):
        path = case_dir / rel
        report.checked.append(rel)
        reason = _unsafe(rel)
        if reason is None and (path.is_symlink() or not _inside(case_dir, path)):
            reason = "a link, or a path out of the case folder"
        if reason is not None:  # never read: a manifest must not make verify open files outside the case
            report.problems.append(f"{rel}: refused ({reason})")
            continue
        if not isinstance(entry, dict):
            report.problems.append(f"{rel}: not a file entry")
            continue
        if not path.is_file():
            report.problems.append(f"{rel}: missing")
            continue
        size = path.stat().st_size
        if size != entry.get("bytes"):
            report.problems.append(f"{rel}: {size} bytes, manifest says {entry.get('bytes')} (truncated or grown)")
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            report.problems.append(f"{rel}: SHA-256 {digest} differs from the manifest's {entry.get('sha256')}")
        if "records" in entry:
            try:
                lines = count_lines(path)
            except (OSError, EOFError, ValueError) as exc:
                report.problems.append(f"{rel}: unreadable ({exc})")
                continue
            if lines != entry["records"]:
                report.problems.append(f"{rel}: {lines} records, manifest says {entry['records']}")
    for name, query in sorted(data.get("collection", {}).get("queries", {}).items()):
        c = query.get("counts", {})
        if c.get("retrieved") != c.get("unique", 0) + c.get("duplicates_removed", 0):
            report.problems.append(
                f"query {name}: retrieved {c.get('retrieved')} != unique {c.get('unique')} + duplicates removed "
                f"{c.get('duplicates_removed')}"
            )
        kept = sum(
            e.get("records", 0)
            for rel, e in data["files"].items()
            if Path(rel).name in (query.get("file"), f"{name}.unparsed.jsonl")
        )
        if kept != c.get("unique"):
            report.problems.append(f"query {name}: {kept} records in its files, manifest counts {c.get('unique')}")
    listed = set(data["files"])
    for path in sorted(case_dir.rglob("*")):
        rel = path.relative_to(case_dir).as_posix()
        if (path.is_file() or path.is_symlink()) and rel not in listed and rel not in _SELF:
            report.unlisted.append(rel)
            report.problems.append(f"{rel}: not listed in the manifest (added after the run, or by someone else)")
    return report

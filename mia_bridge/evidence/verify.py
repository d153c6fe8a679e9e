"""``mia verify``: recheck every registered file's size, SHA-256 and record count, and the counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mia_bridge.evidence.manifest import load_manifest, sha256_file
from mia_bridge.evidence.store import count_lines


@dataclass
class VerifyReport:
    case_dir: Path
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"case": str(self.case_dir), "ok": self.ok, "checked": self.checked, "problems": self.problems}


def verify_case(case_dir: Path | str) -> VerifyReport:
    """Check the case folder against its manifest. Raises ManifestError if there is no usable manifest."""
    case_dir = Path(case_dir)
    data = load_manifest(case_dir)
    report = VerifyReport(case_dir)
    for rel, entry in sorted(data["files"].items()):
        path = case_dir / rel
        report.checked.append(rel)
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
    return report

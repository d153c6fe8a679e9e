"""The second source of an investigation's records: audit-log exports instead of the tenant.

The inputs are evidence: each is copied unchanged into ``CASE/evidence/exports/`` and hashed into the
manifest before anything reads it; only the copies are read (by the readers ``mia analyze`` uses, so every
format it takes, mixed, ``.gz`` included). Sparrow's searches are then applied to the records with the
service's own criteria (``matches``): operations case-insensitively and without a trailing period (as
Search-UnifiedAuditLog matches "Consent to application" to Entra's "Consent to application."), record
types by name or number, ``-UserIds`` on ``UserId``, ``-FreeText`` as a case-insensitive substring of the
record's AuditData, ``start <= CreationTime < end``.

Where an export cannot answer a search (it holds none of the workload the search reads, or it is Sparrow's own
files) the outcome says so, never "nothing found". What the tenant would have said (its domains, applications,
federation) is inferred in ``offline_infer``.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mia_bridge import safe_files
from mia_bridge.collect.engine import QueryCounts, QueryResult
from mia_bridge.errors import MiaError, ReaderError, UnreadableInput, UsageError
from mia_bridge.evidence import layout, manifest
from mia_bridge.investigate.plan import SearchSpec
from mia_bridge.investigate.searches import SearchRun
from mia_bridge.investigate.steps import StepOutcome, StepStatus
from mia_bridge.readers.base import Quarantined, RawRecord
from mia_bridge.readers.registry import prepare, read_prepared
from mia_bridge.records import fields as af
from mia_bridge.records.fields import operation_of

EXPORTS_DIR = Path(layout.EXPORTS_DIR)
# Formats that hold less than the whole AuditData record (renamed or dropped fields, column subsets), read
# after the formats that hold it whole: the kept copy of a record in several exports is the whole one.
_PROJECTIONS = {"sentinel_officeactivity_csv": 1, "sentinel_officeactivity_json": 1, "defender_cloudappevents": 1,
                "sparrow_csv": 2, "mailbox_audit_log_csv": 2}
EXPORT_KIND = "evidence-export"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 100

# AuditLogRecordType (Management Activity API schema, "Enum: AuditLogRecordType"): the names Sparrow's and
# our searches use, and what Purview/Sentinel exports write in place of the number.
RECORD_TYPES: dict[str, int] = {
    "exchangeadmin": 1, "exchangeitem": 2, "exchangeitemgroup": 3, "sharepoint": 4,
    "sharepointfileoperation": 6, "onedrive": 7, "azureactivedirectory": 8,
    "azureactivedirectoryaccountlogon": 9, "sharepointsharingoperation": 14, "azureactivedirectorystslogon": 15,
    "exchangeaggregatedoperation": 19, "exchangeitemaggregated": 50,
}  # fmt: skip
# The workload each search reads (AuditData ``Workload``): where an export holds none of it, the search
# cannot be answered from that export. Operations not listed are Exchange's (mailbox and admin cmdlets).
_AAD_OPERATIONS = {"userloggedin", "userloginfailed"}
_FILE_OPERATIONS = {"fileaccessed", "fileaccessedextended"}
_EXCHANGE_OPERATIONS = {"mailitemsaccessed", "mailboxlogin", "send", "searchqueryinitiatedexchange", "updateinboxrules"}
AAD = "AzureActiveDirectory"
EXCHANGE = "Exchange"
FILES = "SharePoint/OneDrive"


@dataclass
class ExportFile:
    """One input as preserved in the case, and what reading it gave."""

    source: str  # the path as given (for messages: the responder knows it by this name)
    path: Path  # the copy in the case: the only file read
    rel: str
    sha256: str
    size: int
    format: str | None = None
    records_read: int = 0
    records_quarantined: int = 0
    error: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "file": self.rel, "sha256": self.sha256, "bytes": self.size,
                "format": self.format, "records_read": self.records_read,
                "records_quarantined": self.records_quarantined, "error": self.error}  # fmt: skip


@dataclass
class ExportSet:
    """What the exports hold (every record counted, each Id once: the first copy), and the records a search
    can return (the others are counted, not kept: the analysis reads the files itself)."""

    files: list[ExportFile]
    records: list[dict[str, Any]] = field(default_factory=list)  # kept for the searches
    times: list[datetime | None] = field(default_factory=list)
    by_operation: dict[str, list[int]] = field(default_factory=dict)  # normalised operation -> record positions
    _texts: dict[int, str] = field(default_factory=dict, repr=False)
    quarantined: list[Quarantined] = field(default_factory=list)
    read: int = 0  # records read (parsed + quarantined)
    duplicates: int = 0  # the same Id read again (another export, or twice in one)
    undated: int = 0  # no readable CreationTime: kept in evidence, outside every period
    unique: int = 0  # records after duplicates, kept or not
    workloads: Counter[str] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    families: Counter[str] = field(default_factory=Counter)  # AAD / EXCHANGE / FILES / other workloads / "?"
    owner_domains: Counter[str] = field(default_factory=Counter)  # domains of the mailbox owners
    acting_apps: set[str] = field(default_factory=set)  # AppIds acting in any record
    first: datetime | None = None
    last: datetime | None = None

    def text(self, position: int) -> str:
        """The record's AuditData as JSON, lower case (what -FreeText searches), made once when first asked."""
        text = self._texts.get(position)
        if text is None:
            text = self._texts[position] = _text(self.records[position])
        return text

    @property
    def parsed(self) -> int:
        return self.read - len(self.quarantined)

    def workload_families(self) -> set[str]:
        """The workloads the records come from ("?" for a record whose workload cannot be told)."""
        return set(self.families)

    def describe(self) -> dict[str, Any]:
        return {
            "files": [f.describe() for f in self.files],
            "records_read": self.read,
            "records_parsed": self.parsed,
            "records_quarantined": len(self.quarantined),
            "duplicates_removed": self.duplicates,
            "records_unique": self.unique,
            "records_kept_for_searches": len(self.records),
            "undated": self.undated,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "workloads": dict(self.workloads.most_common()),
            "operations": dict(self.operations.most_common()),
        }


def safe_name(name: str, index: int) -> str:
    """A file name from an input's name that is safe in any path: no separators, no leading dot, bounded;
    the index keeps two inputs of the same name apart."""
    stem = _SAFE.sub("_", Path(name).name).strip("._") or "export"
    return f"{index:02d}-{stem[:_MAX_NAME]}"


def check_case(case_dir: Path) -> dict[str, Any]:
    """The case's manifest (empty for a new case); a case collected from the tenant is refused before anything
    is written into it: the records of a tenant run and of exports must not mix in one package."""
    try:
        data = manifest.load_manifest(case_dir) if (case_dir / manifest.MANIFEST_NAME).exists() else {}
    except MiaError:
        data = {}
    if data.get("collection"):
        raise UsageError(f"{case_dir} holds a case collected from the tenant: the exports need a case of their own",
                         hint="give --from-exports a new --out folder")  # fmt: skip
    return data


def preserve_exports(case_dir: Path, inputs: Sequence[Path]) -> list[ExportFile]:
    """Copy every input unchanged into the case and hash it into the manifest, before anything reads it.

    A rerun into the same case finds its copies again (same name, same hash); a different file where a copy
    already is would replace evidence, and is refused.
    """
    target_dir = safe_files.make_dir(case_dir / EXPORTS_DIR)
    known = check_case(case_dir).get("files", {})
    files: list[ExportFile] = []
    for index, source in enumerate(inputs, start=1):
        if not source.is_file():
            raise UsageError(f"{source}: no such file" if not source.exists() else f"{source}: not a file")
        copy = target_dir / safe_name(str(source), index)
        rel = copy.relative_to(case_dir).as_posix()
        digest = manifest.sha256_file(source) if copy.exists() else ""
        if copy.exists() and (rel not in known or known[rel].get("sha256") != digest):
            raise UsageError(f"{case_dir} already holds another export as {rel}: evidence is never replaced",
                             hint="investigate these exports into a new --out folder")  # fmt: skip
        if not copy.exists():
            try:  # private, exclusive, never through a link planted in the case
                with source.open("rb") as src, safe_files.open_private(copy, "xb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except OSError as exc:
                raise UsageError(f"{source}: cannot copy into the case: {exc.strerror or exc}") from None
        entry = manifest.file_entry(case_dir, rel, kind=EXPORT_KIND)
        files.append(ExportFile(str(source), copy, rel, entry["sha256"], entry["bytes"]))
    manifest.add_files(case_dir, [f.path for f in files], kind=EXPORT_KIND)
    manifest.update_section(case_dir, "exports", "inputs", {f.rel: {"source": f.source, "sha256": f.sha256}
                                                            for f in files})
    return files


def _text(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, default=str).lower()


def read_exports(files: Sequence[ExportFile], searches: Sequence[SearchSpec] | None = None) -> ExportSet:
    """Every record of the preserved copies, keeping those one of ``searches`` can return (None: all); a file
    no reader recognises is an error naming it."""
    result = ExportSet(list(files))
    seen: set[str] = set()
    prepared = []
    for export in files:
        try:
            reader, src, sniffed = prepare(export.path)
        except UnreadableInput as exc:
            export.error = f"{export.source}: {exc.reason}"
            continue
        export.format = reader.NAME
        prepared.append((export, reader, src, sniffed))
    # Whole records first: where an Id is in several exports, the copy kept is the most complete one.
    prepared.sort(key=lambda p: _PROJECTIONS.get(p[1].NAME, 0))
    for export, reader, src, sniffed in prepared:
        for item in read_prepared(reader, src, sniffed):
            result.read += 1
            export.records_read += 1
            if isinstance(item, Quarantined):
                export.records_quarantined += 1
                # named by the input as the responder knows it, and by the copy that was read
                result.quarantined.append(Quarantined(f"{export.source} ({export.rel})", item.line, item.reason,
                                                      item.raw))  # fmt: skip
                continue
            _add(result, item, seen, searches)
    unreadable = [f for f in files if f.error]
    if unreadable and len(unreadable) == len(files):
        raise ReaderError("no export could be read: " + "; ".join(f.error or "" for f in unreadable))
    return result


def _add(result: ExportSet, item: RawRecord, seen: set[str], searches: Sequence[SearchSpec] | None) -> None:
    record = item.data
    rid = af.record_id(record)
    if rid:
        if rid in seen:
            result.duplicates += 1
            return
        seen.add(rid)
    result.unique += 1
    when = af.record_time(record)
    if when is None:
        result.undated += 1
    else:
        result.first = when if result.first is None or when < result.first else result.first
        result.last = when if result.last is None or when > result.last else result.last
    operation = operation_of(record)
    result.workloads[str(record.get("Workload") or "?")] += 1
    result.families[_family(str(record["Workload"])) if record.get("Workload") else _family_of(operation)] += 1
    result.operations[str(record.get("Operation") or "?")] += 1
    result.acting_apps |= af.record_apps(record)
    owner = str(record.get("MailboxOwnerUPN") or "")
    if not owner and operation in {"mailitemsaccessed", "mailboxlogin"}:
        owner = str(record.get("UserId") or "")
    if "@" in owner:
        result.owner_domains[owner.rsplit("@", 1)[1].strip().lower()] += 1
    if searches is not None:
        text: list[str] = []

        def lazy() -> str:
            if not text:
                text.append(_text(record))
            return text[0]

        if not any(matches(spec, record, lazy) for spec in searches):
            return  # no search can return it: counted above, read by the analysis from the file
    result.by_operation.setdefault(operation, []).append(len(result.records))
    result.records.append(record)
    result.times.append(when)


def _family(workload: str) -> str:
    text = workload.lower()
    if text.startswith("azureactivedirectory"):
        return AAD
    if text in {"sharepoint", "onedrive"}:
        return FILES
    if text == "exchange":
        return EXCHANGE
    return workload


def _family_of(operation: str) -> str:
    """The workload of a record without ``Workload`` (projections such as msticpy's), from its operation:
    Entra ID operations are sentences ("Consent to application."), Exchange's are cmdlets or CamelCase."""
    if operation in _FILE_OPERATIONS:
        return FILES
    if operation in _AAD_OPERATIONS or " " in operation:
        return AAD
    if "-" in operation or operation in _EXCHANGE_OPERATIONS:
        return EXCHANGE
    return "?"


def _record_type(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() else RECORD_TYPES.get(text.lower())


def search_workloads(spec: SearchSpec) -> set[str]:
    """The workloads whose records a search can return (empty: any)."""
    if spec.record_types:
        return {AAD if t.lower().startswith("azureactivedirectory") else EXCHANGE for t in spec.record_types}
    if not spec.operations:
        return {AAD}  # Sparrow's 8a/8b: sign-ins by the PowerShell apps (free text alone)
    out = set()
    for operation in spec.operations:
        op = operation.lower()
        out.add(AAD if op in _AAD_OPERATIONS else FILES if op in _FILE_OPERATIONS else EXCHANGE)
    return out


def _operations(spec: SearchSpec) -> set[str]:
    return {o.strip().rstrip(".").strip().lower() for o in spec.operations}


def matches(spec: SearchSpec, record: Mapping[str, Any], text: Callable[[], str]) -> bool:
    """Search-UnifiedAuditLog's filter, applied to one record (``text()``: its AuditData, lower case)."""
    if spec.operations and operation_of(record) not in _operations(spec):
        return False
    if spec.record_types:
        wanted = {RECORD_TYPES.get(t.lower()) for t in spec.record_types}
        if _record_type(record.get("RecordType")) not in wanted:
            return False
    if spec.user_ids and af.user_of(record) not in {u.lower() for u in spec.user_ids}:
        return False
    return not spec.free_text or spec.free_text.lower() in text()


def search(spec: SearchSpec, exports: ExportSet, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The records of the exports one search returns, in the exports' order."""
    if spec.operations:  # only the records of those operations can match: look at no other
        positions: Iterable[int] = sorted(i for op in _operations(spec) for i in exports.by_operation.get(op, ()))
    else:
        positions = range(len(exports.records))
    out = []
    for i in positions:
        when = exports.times[i]
        if when is None or not start <= when < end:
            continue
        if matches(spec, exports.records[i], functools.partial(exports.text, i)):
            out.append(exports.records[i])
    return out


def run_offline_searches(
    runs: Sequence[SearchRun], exports: ExportSet, *, start: datetime, end: datetime, evidence_dir: Path
) -> list[StepOutcome]:
    """Each planned search over the exports' records (``start <= CreationTime < end``), with its outcome."""
    outcomes = []
    families = exports.workload_families()
    formats = {f.format for f in exports.files if f.format}
    only_sparrow = formats == {"sparrow_csv"}
    for run in runs:
        if run.skipped:
            outcomes.append(_outcome(run, ""))
            continue
        spec = run.spec
        run.records = search(spec, exports, start, end)
        n = len(run.records)
        run.result = QueryResult(spec.to_audit_query(start, end), evidence_dir, QueryCounts(retrieved=n, unique=n),
                                 calls=0, retries=0, windows=[], gaps=[], resumed=False)  # fmt: skip
        missing = search_workloads(spec) - families
        note = ""
        if not n and missing and "?" not in families and not (search_workloads(spec) & families):
            note = (f"the exports cannot answer this search: they hold no {' or '.join(sorted(missing))} records"
                    + (f" (only {', '.join(sorted(families))})" if families else ""))
        elif not n and only_sparrow and not spec.sparrow_row:
            note = ("the exports cannot answer this search: they are Sparrow's files, which hold only the records "
                    "of Sparrow's own searches")
        outcomes.append(_outcome(run, note))
    return outcomes


def _outcome(run: SearchRun, cannot_answer: str) -> StepOutcome:
    label = f"Search {run.spec.sparrow_row or '+'}: {run.spec.title}"
    if run.skipped:
        attention = not (run.skipped.startswith("no federated domain") or run.spec.premium_only)
        return StepOutcome(label, StepStatus.SKIPPED, run.skipped, attention)
    if cannot_answer:
        return StepOutcome(label, StepStatus.DONE, cannot_answer, True, {"query": run.spec.name, "answerable": False})
    return StepOutcome(label, StepStatus.DONE, f"{len(run.records)} record(s) in the exports match",
                       False, {"query": run.spec.name})  # fmt: skip

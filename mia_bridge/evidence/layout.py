"""The case folder's layout: every file and folder of a case, who writes it, and its label.

Every name of the case folder is defined here once. Each entry carries one of three labels:

- **raw evidence**: what the tenant (or the exports) gave, kept exactly as received and hashed first. It
  names every party and subject: never redacted, never to be shared.
- **chain of custody**: the evidence index (hashes, the queries as sent) and the collector's resume journal.
  Not redacted (a resume compares them), not to be shared either.
- **derived**: everything built from the evidence (analysis, findings, exports, report). With
  ``--redact-subjects`` / ``--hash-addresses`` these are redacted and may be shared.

``mia_bridge.evidence.case.Case`` writes through this table; the manifest records each file's label; the
redaction and the report's "what may be shared" read it. This module imports nothing of the project, so
every writer at or above ``evidence`` (the collector's journal in ``collect/state.py`` included) takes its
names from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Label(StrEnum):
    RAW_EVIDENCE = "raw evidence"
    CHAIN_OF_CUSTODY = "chain of custody"
    DERIVED = "derived"


@dataclass(frozen=True)
class Entry:
    """One file (``name``) or folder (``name`` ending in ``/``) of the case folder."""

    name: str
    label: Label
    writer: str  # the module that writes it
    what: str
    names_parties: bool = True  # holds tenant text (addresses, subjects); False: hashes or signatures only

    @property
    def folder(self) -> bool:
        return self.name.endswith("/")

    def holds(self, relative: str) -> bool:
        return relative.startswith(self.name) if self.folder else relative == self.name


RAW, CUSTODY, DERIVED = Label.RAW_EVIDENCE, Label.CHAIN_OF_CUSTODY, Label.DERIVED

# folders and files (the names other modules use)
EVIDENCE_DIR = "evidence"
EXPORTS_DIR = "evidence/exports"
DIRECTORY_DIR = "directory"
ENRICH_RAW_DIR = "enrich/raw"
STATE_DIR = "state"
ENRICH_DIR = "enrich"
SPARROW_DIR = "sparrow"
ANALYSIS_DIR = "analysis"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.hmac"
SETTINGS_NAME = "investigation.settings.json"
INVESTIGATION_NAME = "investigation.json"
REPORT_NAME = "report.html"
FINDINGS_NAME = "findings.json"
EXPOSED_NAME = "exposed_messages.csv"
PARTIES_NAME = "affected_parties.csv"
TIMELINE_NAME = "timeline.csv"
ENRICH_SUMMARY_NAME = "enrich/summary.json"
QUERY_LOG_NAME = "enrich/message_trace_queries.jsonl"

# In this order: the derived entries are listed to the reader in it (investigation.json, the report).
LAYOUT: tuple[Entry, ...] = (
    Entry(f"{EVIDENCE_DIR}/", RAW, "collect (engine, graph_audit, mailbox_audit)",
          "the audit records as received, one JSON object a line (*-unparsed.jsonl: rows that did not parse)"),
    Entry(f"{EXPORTS_DIR}/", RAW, "investigate/offline.py", "--from-exports: the exports, copied unchanged"),
    Entry(f"{DIRECTORY_DIR}/", RAW, "investigate/directory.py, investigate/pipeline.py",
          "the tenant's answers: ingestion setting, licence, domains, service principals, Graph permissions"),
    Entry(f"{ENRICH_RAW_DIR}/", RAW, "enrich/outputs.py (RawWriter)", "message trace and mailbox answers"),
    Entry(MANIFEST_NAME, CUSTODY, "evidence/manifest.py",
          "every file's SHA-256, size and label; what was collected and how; the investigation's outcome"),
    Entry(SIGNATURE_NAME, CUSTODY, "evidence/seal.py", "HMAC-SHA256 of the manifest (with a case key)",
          names_parties=False),
    Entry(f"{STATE_DIR}/", CUSTODY, "collect/state.py, evidence/store.py",
          "the collector's resume journal (queries as sent) and cut-off tails of evidence files"),
    Entry(REPORT_NAME, DERIVED, "report/html.py (investigate step 'Report')", "the HTML report"),
    Entry(EXPOSED_NAME, DERIVED, "enrich/outputs.py (write_exposed)",
          "one row per message read in the attacker's context (and potentially exposed), with its parties"),
    Entry(PARTIES_NAME, DERIVED, "enrich/api.py", "every affected address and external domain"),
    Entry(FINDINGS_NAME, DERIVED, "investigate/pipeline.py", "the attacker context and the findings"),
    Entry(TIMELINE_NAME, DERIVED, "exports/timeline.py", "every record, Timesketch CSV"),
    Entry(INVESTIGATION_NAME, DERIVED, "investigate/pipeline.py", "options, steps and outcomes, summary"),
    Entry(SETTINGS_NAME, DERIVED, "investigate/pipeline.py", "the options (a rerun resumes the same period)"),
    Entry(ENRICH_SUMMARY_NAME, DERIVED, "enrich/api.py", "the enrichment's scope and counts"),
    Entry(QUERY_LOG_NAME, DERIVED, "enrich/api.py", "the message-trace queries sent"),
    Entry(f"{SPARROW_DIR}/", DERIVED, "exports/sparrow.py", "Sparrow.ps1's CSV files, byte for byte"),
    Entry(f"{ANALYSIS_DIR}/", DERIVED, "analysis/outputs.py", "the MailItemsAccessed analysis tables"),
)


def entry_of(relative: str) -> Entry | None:
    """The layout entry holding a case-relative path (``/`` separators), the most specific first."""
    relative = relative.replace("\\", "/").removeprefix("./")
    best: Entry | None = None
    for entry in LAYOUT:
        if entry.holds(relative) and (best is None or len(entry.name) > len(best.name)):
            best = entry
    return best


def label_of(relative: str) -> Label:
    """The label of a case-relative path; a file the layout does not name is derived (built by a command)."""
    entry = entry_of(relative)
    return entry.label if entry is not None else DERIVED


def is_raw_evidence(relative: str) -> bool:
    return label_of(relative) is RAW


def _listed(label: Label) -> tuple[str, ...]:
    """Names with ``label`` that hold tenant text, a folder inside another of the same label left out."""
    entries = [e for e in LAYOUT if e.label is label and e.names_parties]
    return tuple(e.name for e in entries
                 if not any(o is not e and o.folder and e.name.startswith(o.name) for o in entries))


RAW_EVIDENCE = _listed(RAW)  # ("evidence/", "directory/", "enrich/raw/")
CHAIN_OF_CUSTODY = _listed(CUSTODY)  # ("manifest.json", "state/")
SHAREABLE = _listed(DERIVED)  # redacted with --redact-subjects / --hash-addresses: these may be shared

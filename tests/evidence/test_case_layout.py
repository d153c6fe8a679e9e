"""The case folder's layout: one table names every file and folder and labels it; the lists the redaction and
the report show are read from it; the collector's own names agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mia_bridge.collect import state
from mia_bridge.evidence import store
from mia_bridge.evidence.case import Case
from mia_bridge.evidence.layout import (
    CHAIN_OF_CUSTODY,
    LAYOUT,
    RAW_EVIDENCE,
    SHAREABLE,
    Label,
    entry_of,
    is_raw_evidence,
    label_of,
)
from mia_bridge.evidence.redaction import Redactor, redaction_record


@pytest.mark.parametrize(("relative", "label"), [
    ("evidence/sparrow-01-domain.jsonl", Label.RAW_EVIDENCE),
    ("evidence/exports/01-audit.csv", Label.RAW_EVIDENCE),
    ("directory/domains.json", Label.RAW_EVIDENCE),
    ("enrich/raw/message_trace.jsonl", Label.RAW_EVIDENCE),
    ("enrich/summary.json", Label.DERIVED),
    ("manifest.json", Label.CHAIN_OF_CUSTODY),
    ("manifest.hmac", Label.CHAIN_OF_CUSTODY),
    ("state/sparrow-01-domain.journal.jsonl", Label.CHAIN_OF_CUSTODY),
    ("analysis/items.parquet", Label.DERIVED),
    ("sparrow/AppInvestigations/x/MailItems.csv", Label.DERIVED),
    ("exposed_messages.csv", Label.DERIVED),
    (".\\directory\\license.json", Label.RAW_EVIDENCE),
])  # fmt: skip
def test_labels(relative: str, label: Label) -> None:
    assert label_of(relative) is label
    assert is_raw_evidence(relative) is (label is Label.RAW_EVIDENCE)


def test_a_name_is_defined_once() -> None:
    names = [e.name for e in LAYOUT]
    assert len(names) == len(set(names))
    assert entry_of("evidence/exports/a.csv") is not None
    assert entry_of("evidence/exports/a.csv").name == "evidence/exports/"  # type: ignore[union-attr]


def test_the_collector_uses_the_layout_names() -> None:
    """The collector's journal and the evidence store name their folders from the layout."""
    assert f"{state.STATE_DIR}/" in {e.name for e in LAYOUT if e.label is Label.CHAIN_OF_CUSTODY}
    assert f"{store.EVIDENCE_DIR}/" in {e.name for e in LAYOUT if e.label is Label.RAW_EVIDENCE}


def test_the_sharing_lists_come_from_the_labels() -> None:
    assert RAW_EVIDENCE == ("evidence/", "directory/", "enrich/raw/")
    assert CHAIN_OF_CUSTODY == ("manifest.json", "state/")  # manifest.hmac holds no tenant text
    assert "report.html" in SHAREABLE and "analysis/" in SHAREABLE
    assert not any(label_of(name) is not Label.DERIVED for name in SHAREABLE)
    record = redaction_record(Redactor(redact_subjects=True))
    assert record["raw_evidence_not_redacted"] == list(RAW_EVIDENCE)
    assert all(name in record["redacted_files"] for name in SHAREABLE)
    assert redaction_record(Redactor())["redacted_files"].startswith("none")


def test_a_case_names_only_what_the_layout_holds(tmp_path: Path) -> None:
    case = Case(tmp_path / "c").create()
    assert case.path("exposed_messages.csv") == case.folder / "exposed_messages.csv"
    assert case.path("analysis/items.csv").parent == case.analysis_dir
    with pytest.raises(ValueError, match="not part of the case folder's layout"):
        case.path("notes.txt")
    written = case.write_json("findings.json", {"a": 1})
    assert case.register([written, case.folder / "timeline.csv"], kind="investigation") == [written]
    assert case.manifest()["files"]["findings.json"]["label"] == "derived"
    assert case.label(case.folder / "state" / "x") is Label.CHAIN_OF_CUSTODY

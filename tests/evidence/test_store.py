"""The evidence store: dedup on Id, byte-exact lines, gzip members, unparseable rows kept, crash tails."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from mia_bridge.errors import EvidenceError
from mia_bridge.evidence.store import EvidenceFile, count_lines, parse_row, read_records


def _text(i: int, extra: str = "") -> str:
    return f'{{"CreationTime":"2026-01-01T00:00:{i:02d}","Id":"ID-{i}","Operation":"X"{extra}}}'


def test_rows_are_kept_byte_exact_and_deduplicated(tmp_path: Path) -> None:
    store = EvidenceFile(tmp_path, "q")
    store.open()
    rows = [parse_row(_text(1, ', "Spaced" :  1')), parse_row(_text(2)), parse_row(_text(1, ', "Spaced" :  1'))]
    counts, size, _ = store.commit(rows, period=(0, 1767225602))
    assert (counts.rows, counts.new, counts.duplicates, counts.id_conflicts) == (3, 2, 1, 0)
    assert counts.out_of_window == 1  # 00:00:02 is past the period end
    lines = store.path.read_text().splitlines()
    assert lines == [_text(1, ', "Spaced" :  1'), _text(2)] and size == store.path.stat().st_size
    again, _, _ = store.commit([parse_row(_text(2))], superseded=True)
    assert again.duplicates == 1 and again.duplicates_of_superseded == 0


def test_gzip_commits_are_members_and_read_back(tmp_path: Path) -> None:
    store = EvidenceFile(tmp_path, "q", compress=True)
    store.open()
    store.commit([parse_row(_text(1))])
    _, size, _ = store.commit([parse_row(_text(2))])
    assert store.path.name == "q.jsonl.gz" and count_lines(store.path) == 2
    assert [r["Id"] for r in read_records(store.path)] == ["ID-1", "ID-2"]
    reopened = EvidenceFile(tmp_path, "q", compress=True)
    reopened.open(size)
    assert reopened.records == 2 and reopened.keys() == {"id-1", "id-2"}
    assert gzip.decompress(store.path.read_bytes()).count(b"\n") == 2


def test_unparseable_audit_data_goes_to_a_side_file(tmp_path: Path) -> None:
    store = EvidenceFile(tmp_path, "q")
    store.open()
    counts, _, usize = store.commit([parse_row("not json {", identity="abc"), parse_row("not json {", identity="abc")])
    assert counts.unparseable == 1 and counts.duplicates == 1 and usize > 0
    assert json.loads(store.unparsed_path.read_text()) == "not json {"


def test_multi_line_json_is_compacted_into_one_line(tmp_path: Path) -> None:
    store = EvidenceFile(tmp_path, "q")
    store.open()
    store.commit([parse_row('{\n  "Id": "A",\n  "CreationTime": "2026-01-01T00:00:00"\n}')])
    assert store.path.read_text() == '{"Id":"A","CreationTime":"2026-01-01T00:00:00"}\n'


def test_uncommitted_tail_is_cut_and_a_short_file_is_an_error(tmp_path: Path) -> None:
    store = EvidenceFile(tmp_path, "q")
    store.open()
    _, size, _ = store.commit([parse_row(_text(1))])
    with store.path.open("a") as fh:
        fh.write('{"Id": "torn')
    again = EvidenceFile(tmp_path, "q")
    again.open(size)
    assert store.path.stat().st_size == size and again.records == 1
    with pytest.raises(EvidenceError, match="truncated"):
        EvidenceFile(tmp_path, "q").open(size + 10)
    store.path.unlink()
    with pytest.raises(EvidenceError, match="missing"):
        EvidenceFile(tmp_path, "q").open(size)


def test_creation_time_parsing() -> None:
    assert parse_row(_text(5)).time == 1767225605
    assert parse_row('{"Id":"x","CreationTime":"2026-01-01T00:00:05Z"}').time == 1767225605
    assert parse_row('{"Id":"x","CreationTime":"2026-01-01T01:00:05+01:00"}').time == 1767225605


def test_same_id_with_other_content_is_kept_and_counted_as_a_conflict(tmp_path: Path) -> None:
    """Only a byte-identical copy is a duplicate: a row whose Id was collected with other content is kept."""
    forward = _text(7, ',"ForwardTo":"evil@attacker.example"')
    internal = _text(7, ',"ForwardTo":"boss@contoso.example"')
    store = EvidenceFile(tmp_path, "q")
    store.open()
    first, _, _ = store.commit([parse_row(forward)])
    second, size, _ = store.commit([parse_row(internal), parse_row(forward), parse_row(internal)])
    assert (first.new, first.id_conflicts) == (1, 0)
    assert (second.rows, second.new, second.duplicates, second.id_conflicts) == (3, 1, 2, 1)
    assert store.path.read_text().splitlines() == [forward, internal]
    # After a resume the stored versions are known again: neither is taken for new, neither dropped.
    reopened = EvidenceFile(tmp_path, "q")
    reopened.open(size)
    again, _, _ = reopened.commit([parse_row(internal), parse_row(forward), parse_row(_text(7, ',"X":1'))])
    assert (again.duplicates, again.new, again.id_conflicts) == (2, 1, 1)
    assert reopened.records == 3

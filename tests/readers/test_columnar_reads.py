"""The bulk readers' columnar reads: raw AuditData fields as arrow tables, block by block, numbered by line;
``Irregular`` (or an arrow error) whenever the file must be read record by record instead.

Only the reading is checked here (raw values, as the input holds them); turning the tables into analysis rows,
and their equality with the record-by-record path, is checked in tests/analysis/test_columnar_*.py.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import write_csv_export
from hypothesis import given, settings
from hypothesis import strategies as st

from mia_bridge.readers import auditdata_csv, raw_auditdata_json
from mia_bridge.readers.base import Irregular
from mia_bridge.readers.decoding import decode_input
from mia_bridge.readers.registry import prepare

STEP_ASIDE = (Irregular, pa.ArrowInvalid, pa.ArrowTypeError)


def record(i: int, **extra: Any) -> dict[str, Any]:
    return {"CreationTime": f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}", "Id": f"id-{i:06d}",
            "Operation": "MailItemsAccessed", "RecordType": 50, "UserId": f"User{i % 7}@Contoso.example",
            "ClientIPAddress": "[2001:DB8::1]:443", "Unrelated": {"kept": "in the file only"},
            "OperationProperties": [{"Name": "MailAccessType", "Value": " bind "}],
            "Folders": [{"Path": "\\Inbox", "FolderItems": [{"InternetMessageId": f" <M{i}@X.example> "}]}], **extra}


def jsonl(path: Path, records: list[dict[str, Any]], end: str = "\n") -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + end, encoding="utf-8")
    return path


def json_blocks(path: Path) -> list[tuple[pa.Table, int]]:
    return list(raw_auditdata_json.columnar_blocks(decode_input(path)))


def test_jsonl_gives_the_raw_fields_as_the_file_holds_them(tmp_path: Path) -> None:
    [(table, first)] = json_blocks(jsonl(tmp_path / "r.jsonl", [record(i) for i in range(3)]))
    assert first == 1 and table.schema == raw_auditdata_json.SCHEMA  # the fields analysis uses, nothing more
    row = table.slice(1, 1).to_pylist()[0]
    # Not normalised: the user keeps its case, the address its port, the message id its spaces and brackets.
    assert row["UserId"] == "User1@Contoso.example" and row["ClientIPAddress"] == "[2001:DB8::1]:443"
    assert row["Folders"][0]["FolderItems"][0]["InternetMessageId"] == " <M1@X.example> "
    assert row["OperationProperties"] == [{"Name": "MailAccessType", "Value": " bind "}]
    assert row["MailboxOwnerUPN"] is None and "Unrelated" not in table.column_names


def test_jsonl_blocks_fall_between_lines_and_are_numbered_by_line(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(raw_auditdata_json, "_BLOCK", 2048)
    records = [record(i) for i in range(120)]
    records[50]["Folders"][0]["Path"] = "\\Inbox\\" + "x" * 5000  # one line longer than a block: a block alone
    blocks = json_blocks(jsonl(tmp_path / "r.jsonl", records, end=""))  # no final newline either
    assert len(blocks) > 20
    firsts = [first for _, first in blocks]
    sizes = [table.num_rows for table, _ in blocks]
    assert firsts == [1 + sum(sizes[:k]) for k in range(len(blocks))] and sum(sizes) == len(records)
    ids = [i for table, _ in blocks for i in table.column("Id").to_pylist()]
    assert ids == [r["Id"] for r in records]


def test_gzip_gives_the_same_records(tmp_path: Path) -> None:
    plain = jsonl(tmp_path / "r.jsonl", [record(i) for i in range(40)])
    gz = tmp_path / "r.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    tables = [pa.concat_tables(t for t, _ in json_blocks(p)) for p in (plain, gz)]
    assert tables[0].equals(tables[1])


def test_the_ingest_pieces_cut_and_parse_as_the_whole_read_does(tmp_path: Path) -> None:
    """plain_blocks (byte ranges with their line counts) and stream_blocks (bytes) parsed with parse_lines."""
    path = jsonl(tmp_path / "r.jsonl", [record(i) for i in range(300)])
    whole = pa.concat_tables(t for t, _ in json_blocks(path))
    data = path.read_bytes()
    ranges = list(raw_auditdata_json.plain_blocks(str(path), 1 << 20, 4096))
    assert len(ranges) > 5 and ranges[0][0] == 0 and ranges[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in pairwise(ranges))
    cut = pa.concat_tables(raw_auditdata_json.parse_lines(data[start:end], lines) for start, end, lines in ranges)
    assert cut.equals(whole)
    gz = tmp_path / "r.jsonl.gz"
    gz.write_bytes(gzip.compress(data))
    streamed = list(raw_auditdata_json.stream_blocks(decode_input(gz), 4096))
    assert sum(lines for _, lines in streamed) == 300
    assert pa.concat_tables(raw_auditdata_json.parse_lines(b, n) for b, n in streamed).equals(whole)


@pytest.mark.parametrize("case", ["blank line", "wrapped record", "NUL byte", "another type", "blank last line",
                                  "blank line, gzip"])
def test_jsonl_steps_aside_on_anything_irregular(tmp_path: Path, case: str) -> None:
    good = [json.dumps(record(i)) for i in range(5)]
    text = {
        "blank line": "\n".join([*good[:2], "", *good[2:]]),
        "wrapped record": "\n".join([*good, json.dumps({"AuditData": json.dumps(record(9))})]),
        "NUL byte": "\n".join([*good, json.dumps(record(9)).replace("Mail", "Ma\x00il")]),
        "another type": "\n".join([*good, json.dumps(record(9, RecordType="fifty"))]),
        "blank last line": "\n".join([*good, ""]),
        "blank line, gzip": "\n".join([*good[:2], "", *good[2:]]),
    }[case]
    path = tmp_path / "r.jsonl"
    path.write_text(text + "\n", encoding="utf-8")
    if case.endswith("gzip"):
        path = tmp_path / "r.jsonl.gz"
        path.write_bytes(gzip.compress((text + "\n").encode()))
    with pytest.raises(STEP_ASIDE):
        json_blocks(path)


def test_a_line_over_the_record_size_limit_steps_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(raw_auditdata_json, "_BLOCK", 1024)
    monkeypatch.setattr(raw_auditdata_json, "_LINE_COUNT_BLOCK", 1024)
    long = record(1, Padding="x" * 5000)
    path = jsonl(tmp_path / "r.jsonl", [record(0), long, record(2)])
    src = decode_input(path, max_record_bytes=4096)
    assert raw_auditdata_json.columnar_allowed(src)
    with pytest.raises(Irregular, match="longer than the record size limit"):
        list(raw_auditdata_json.columnar_blocks(src))
    with pytest.raises(Irregular, match="longer than the record size limit"):
        raw_auditdata_json.count_lines(src)
    assert not raw_auditdata_json.columnar_allowed(decode_input(path, max_record_bytes=512))  # below a block


def test_utf16_is_left_to_the_record_reader(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(("\n".join(json.dumps(record(i)) for i in range(3)) + "\n").encode("utf-16"))
    src = decode_input(path)
    assert not raw_auditdata_json.columnar_allowed(src)
    with pytest.raises(Irregular):
        list(raw_auditdata_json.columnar_blocks(src))


# --- CSV exports with an AuditData column -------------------------------------------------------------------


PURVIEW = ["RecordId", "CreationDate", "RecordType", "Operation", "UserId", "AuditData"]


def export(path: Path, rows: list[list[str]], type_line: bool = False, header: list[str] = PURVIEW) -> Path:
    return write_csv_export(path, header, rows, type_line)


def row(r: dict[str, Any], audit: str | None = None) -> list[str]:
    return [r["Id"], r["CreationTime"], "50", r["Operation"], r["UserId"],
            json.dumps(r) if audit is None else audit]


def csv_blocks(path: Path) -> list[tuple[pa.Table, int]]:
    reader, src, sniffed = prepare(path, None)
    assert reader.NAME in auditdata_csv.NAMES
    return list(auditdata_csv.columnar_blocks(src, sniffed))


@pytest.mark.parametrize("type_line", [False, True])
def test_csv_gives_the_auditdata_records_numbered_by_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          type_line: bool) -> None:
    monkeypatch.setattr(auditdata_csv, "_BLOCK", 4096)
    records = [record(i) for i in range(100)]
    blocks = csv_blocks(export(tmp_path / "e.csv", [row(r) for r in records], type_line))
    assert len(blocks) > 5
    skip = 2 if type_line else 1
    sizes = [t.num_rows for t, _ in blocks]
    assert [first for _, first in blocks] == [skip + 1 + sum(sizes[:k]) for k in range(len(blocks))]
    table = pa.concat_tables(t for t, _ in blocks)
    assert table.schema == raw_auditdata_json.SCHEMA
    assert table.column("Id").to_pylist() == [r["Id"] for r in records]
    assert table.column("UserId")[3].as_py() == "User3@Contoso.example"  # as the cell holds it


@pytest.mark.parametrize("case", ["AuditData spans lines", "empty AuditData", "invalid JSON", "wrapped record",
                                  "UserId only in the column", "blank line"])
def test_csv_steps_aside_on_anything_irregular(tmp_path: Path, case: str) -> None:
    records = [record(i) for i in range(5)]
    good = [row(r) for r in records]
    no_user = {k: v for k, v in record(9).items() if k != "UserId"}
    bad = {
        "AuditData spans lines": [*good, row(records[1], json.dumps(records[1], indent=1))],
        "empty AuditData": [*good, row(records[1], " ")],
        "invalid JSON": [*good, row(records[1], '{"Id": "x", ')],
        "wrapped record": [*good, row(records[1], json.dumps({"AuditData": json.dumps(records[1])}))],
        "UserId only in the column": [*good, [*row({**no_user, "UserId": "u@x"})[:5], json.dumps(no_user)]],
        "blank line": [*good[:2], [], *good[2:]],
    }[case]
    with pytest.raises(STEP_ASIDE):
        csv_blocks(export(tmp_path / "e.csv", bad))


def test_csv_header_names_with_spaces_and_other_encodings_are_left_to_the_row_reader(tmp_path: Path) -> None:
    path = export(tmp_path / "e.csv", [row(record(0))])
    _, src, sniffed = prepare(path)
    assert auditdata_csv.columnar_allowed(src, sniffed)
    assert not auditdata_csv.columnar_allowed(src, replace(sniffed, header=(*PURVIEW[:-1], " AuditData")))
    assert not auditdata_csv.columnar_allowed(replace(src, encoding="utf-16"), sniffed)
    with pytest.raises(Irregular):
        list(auditdata_csv.columnar_blocks(replace(src, encoding="cp1252"), sniffed))


WHITESPACE = [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\u00a0", "\u2003", "\u3000", "\ufeff", "\x85"]


@settings(deadline=None, max_examples=200)
@given(cells=st.lists(st.one_of(st.none(), st.text(max_size=6), st.builds(
    lambda a, b, c: a + b + c, st.text(st.sampled_from(WHITESPACE), max_size=2), st.sampled_from(['{"a":1}', "é", "x"]),
    st.text(st.sampled_from(WHITESPACE), max_size=2))), max_size=25), cut=st.integers(0, 25))
def test_auditdata_cells_are_trimmed_as_the_trim_does_when_it_is_skipped(cells: list[str | None], cut: int) -> None:
    """The AuditData cells skip the trim's copy when no cell's end byte can be whitespace; whatever the cells
    (Unicode spaces, multi-byte ends, nulls, a slice of a larger array), the result is the trim's."""
    array = pa.array(["pad", *cells], pa.string()).slice(1 + min(cut, len(cells)) // 2)
    assert auditdata_csv._trimmed(array).to_pylist() == pc.utf8_trim_whitespace(array).to_pylist()
    chunked = pa.chunked_array([array.slice(0, cut // 2), array.slice(cut // 2)], pa.string())
    assert auditdata_csv._trimmed(chunked).to_pylist() == pc.utf8_trim_whitespace(chunked).to_pylist()


@pytest.mark.parametrize("cell", ['{"Id": "x",\r"Operation": "MailItemsAccessed"}',
                                  '{"Id": "x",\n"Operation": "MailItemsAccessed"}',
                                  '{"Id": "x"}\n{"Id": "y"}'])
def test_a_cell_with_a_line_break_inside_steps_aside(cell: str) -> None:
    """One record per line, or line numbers drift: a CR or LF inside a cell (not at its ends) is irregular."""
    good = json.dumps(record(0))
    batch = pa.RecordBatch.from_pydict({"AuditData": [good, cell, good]})
    with pytest.raises(Irregular, match="spans lines"):
        auditdata_csv.records_of_batch(batch)
    ends = pa.RecordBatch.from_pydict({"AuditData": [good, "\r\n " + good + "\n", good]})
    assert auditdata_csv.records_of_batch(ends).num_rows == 3  # at the ends: trimmed, as the row reader strips

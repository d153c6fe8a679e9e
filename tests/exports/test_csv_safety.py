"""The CSV-injection rule: one definition, the same result cell by cell and vectorised, every writer."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mia_bridge.csv_safety import FORMULA_START, neutralise, neutralise_table, write_dicts, write_rows

ATTACKS = ['=HYPERLINK("http://x","y")', "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1)", "\t=1", "\r=1"]


@pytest.mark.parametrize("value", ATTACKS)
def test_formula_cells_get_a_leading_quote(value: str) -> None:
    assert neutralise(value) == "'" + value


@pytest.mark.parametrize("value", ["", "plain", "'=already quoted", " =space first", "\\Inbox", "a=b", None, -5, 1.5])
def test_other_cells_are_unchanged(value: object) -> None:
    assert neutralise(value) == value  # numbers stay numbers, even negative ones


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
@settings(deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.text(), st.sampled_from(ATTACKS)), max_size=30))
def test_vectorised_rule_is_the_scalar_rule(kind: pa.DataType, values: list[str | None]) -> None:
    table = pa.table({"text": pa.array(values, kind), "number": pa.array(range(len(values)), pa.int64())})
    result = neutralise_table(table)
    assert result.column("text").to_pylist() == [neutralise(v) for v in values]
    assert result.column("number") == table.column("number") and result.column("text").type == kind


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
@settings(deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.text(), st.sampled_from(ATTACKS)), max_size=40),
       cut=st.integers(0, 40), take=st.integers(0, 40), split=st.integers(0, 40))
def test_vectorised_rule_reads_slices_and_chunks_by_their_own_offsets(
        kind: pa.DataType, values: list[str | None], cut: int, take: int, split: int) -> None:
    """The rule reads each cell's first byte from the array's buffers: a slice (an offset into shared buffers)
    and a chunked column must give the scalar rule's answer cell by cell, never a neighbour's byte."""
    sliced = pa.array(values, kind).slice(cut, take)
    expected = [neutralise(v) for v in sliced.to_pylist()]
    assert neutralise_table(pa.table({"t": sliced})).column("t").to_pylist() == expected
    chunked = pa.chunked_array([sliced.slice(0, split), sliced.slice(split)], kind)
    result = neutralise_table(pa.table({"t": chunked})).column("t")
    assert result.to_pylist() == expected and result.type == kind


def test_writers_neutralise_every_cell(tmp_path: Path) -> None:
    write_rows(tmp_path / "a.csv", ["h"], [[v] for v in ATTACKS])
    write_dicts(tmp_path / "b.csv", ["h", "n"], [{"h": v, "n": -1} for v in ATTACKS])
    for name in ("a.csv", "b.csv"):
        with (tmp_path / name).open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))[1:]
        assert [r[0] for r in rows] == ["'" + v for v in ATTACKS]
        assert not any(cell.startswith(FORMULA_START) and cell != "-1" for row in rows for cell in row)

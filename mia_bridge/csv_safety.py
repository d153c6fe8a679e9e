"""CSV injection: the one rule every CSV the project writes outside ``sparrow/`` follows.

A spreadsheet treats a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and a leading tab
or carriage return can hide one (OWASP, "CSV Injection": https://owasp.org/www-community/attacks/CSV_Injection).
Tenant data is attacker-written (subjects, folder and rule names, user agents, app names), so such a cell
is written with a leading ``'``, which makes Excel, LibreOffice and Google Sheets show it as text.

Only text cells are neutralised: numbers (a negative count, a score) are written as numbers. Parquet and
JSON keep the true value. ``sparrow/`` is exempt: it reproduces Sparrow's files exactly.

``neutralise`` is the rule for one value, ``neutralise_table`` the same rule vectorised over every text
column of a pyarrow table (the analysis tables, millions of rows); ``write_rows`` is the csv-module writer.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mia_bridge.safe_files import open_private

if TYPE_CHECKING:
    import pyarrow as pa

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PREFIX = "'"
_FIRST_BYTES = [ord(c) for c in FORMULA_START]  # all ASCII: a cell's first byte tells


def neutralise(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is text that starts with a formula character; else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return PREFIX + value
    return value


def neutralise_row(row: Sequence[Any]) -> list[Any]:
    return [neutralise(v) for v in row]


def _formula_rows(array: pa.Array) -> Any:
    """A numpy bool per cell of a string array: does it start with a formula character (nulls: False).

    Read from the array's own buffers (``records.cell_bytes``), with no per-cell copy: 0.22 s against 0.55 s
    for slicing each first byte and looking it up, on 5.9M item rows (BENCHMARKS.md).
    """
    import numpy as np

    from mia_bridge.records.cell_bytes import end_bytes

    first, _, _ = end_bytes(array)  # 0 for an empty or null cell: never a formula byte
    formula = np.zeros(256, dtype=bool)
    formula[_FIRST_BYTES] = True
    return formula[first]


def neutralise_column(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The rule of ``neutralise`` over a text column (nulls stay null); other columns are returned as they are."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    hits = [_formula_rows(chunk) for chunk in chunks]
    if not any(h.any() for h in hits):  # the usual case: one cheap scan, nothing copied
        return column
    prefix, empty = pa.scalar(PREFIX, column.type), pa.scalar("", column.type)
    safe = [pc.if_else(pa.array(h), pc.binary_join_element_wise(prefix, chunk, empty), chunk)
            for chunk, h in zip(chunks, hits, strict=True)]
    return pa.chunked_array(safe, column.type) if isinstance(column, pa.ChunkedArray) else safe[0]


def neutralise_table(table: pa.Table) -> pa.Table:
    """Every text column of ``table`` neutralised (``neutralise_column``)."""
    for index, field in enumerate(table.schema):
        column = table.column(index)
        safe = neutralise_column(column)
        if safe is not column:
            table = table.set_column(index, field.name, safe)
    return table


def write_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], **fmtparams: Any) -> int:
    """Write ``header`` and ``rows`` (sequences) to ``path`` as UTF-8 CSV, each cell neutralised; returns the
    number of rows. The file is private and never written through a symlink (``safe_files``); ``fmtparams``
    go to ``csv.writer`` (e.g. ``quoting=csv.QUOTE_ALL``)."""
    count = 0
    with open_private(path, "w", newline="") as handle:
        writer = csv.writer(handle, **fmtparams)
        writer.writerow(header)
        for row in rows:
            writer.writerow(neutralise_row(row))
            count += 1
    return count


def write_dicts(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> int:
    """``write_rows`` for rows given as dicts (missing keys are empty cells)."""
    return write_rows(path, columns, ([row.get(c, "") for c in columns] for row in rows))

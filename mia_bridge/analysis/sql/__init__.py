"""The analysis, defined once as SQL: one statement per output table, run by any engine (DuckDB embedded,
Spark through sqlglot).

Every statement is a SELECT in DuckDB's dialect, restricted to what ``sqlglot.transpile(..., read="duckdb",
write="spark")`` turns into valid Spark SQL (tests/analysis/test_sql_portable.py). An engine runs them in
``ORDER`` and makes each result available to the later ones under its name (a table or a view, without the
final ``ORDER BY``: ``body``). Each statement's last line, ``ORDER BY`` over its own column names, is the
output order (``order_by``). Helper columns (``seq``, ``rec``, ``pos``, ``ctx``) are not written:
``OUTPUT_COLUMNS`` lists what is.

Relations an engine provides before the statements run:

- ``records``, ``folders``, ``items``: the base tables (``base_tables.BaseTables``); ``folders`` and
  ``items`` with an extra column ``pos`` (BIGINT): the row's position among the dataset's rows, in the
  dataset's order (its files in name order, then row order), so that a record's folders and items keep the
  order they had in the record.
- ``period``: one row, ``start_time`` and ``end_time`` (UTC timestamps, NULL: open).
- ``option_values``: ``list``, ``value`` (strings): the normalised ``suspicious_ip``, ``suspicious_app`` and
  ``known_good_ip`` lists, and ``microsoft_app`` (``leads.MICROSOFT_APP_IDS``).
- ``lookup_requests``: ``entry_no`` (BIGINT, the list's order), ``requested_as``, ``mailbox`` (NULL: the
  entry names none) and ``internet_message_id`` (normalised; '' when it is not one): the --message-ids list.

The one per-dialect construct is written here, not in the SQL files: ``__py_repr_client__`` (Python's
``repr()`` of the client string, quoted in the lead's reason), expanded into portable nested REPLACEs by
``statement``. ``__score_<code>__`` tokens are ``leads.SCORES``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from mia_bridge.analysis.schema import (
    CONTEXT_COLUMNS,
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    LEAD_COLUMNS,
    MESSAGE_LOOKUP_COLUMNS,
    RECORD_COLUMNS,
    SYNCED_FOLDER_COLUMNS,
    THROTTLED_WINDOW_COLUMNS,
)

# Dependency order: each statement reads only base relations and the statements before it.
ORDER = ["unique_records", "events", "bind_items", "synced_folders", "throttled_windows", "contexts", "leads",
         "message_lookup", "summary_counts", "summary_lists"]

# The columns written for each output table (the statement may carry ``seq``/``rec`` as well).
OUTPUT_COLUMNS: dict[str, list[str]] = {
    "unique_records": [*(c for c in RECORD_COLUMNS if c not in ("in_period", "fingerprint")), "fingerprint",
                       "in_period"],
    "events": EVENT_COLUMNS,
    "bind_items": ITEM_COLUMNS,
    "synced_folders": SYNCED_FOLDER_COLUMNS,
    "throttled_windows": THROTTLED_WINDOW_COLUMNS,
    "contexts": CONTEXT_COLUMNS,
    "leads": LEAD_COLUMNS,
    "message_lookup": MESSAGE_LOOKUP_COLUMNS,
}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def py_repr(column: str) -> str:
    """SQL for Python's ``repr()`` of the string ``column``: in '...' unless it holds a ' and no ", with
    backslash, the quote, tab, newline and carriage return escaped as repr() escapes them.

    Other characters repr() would escape (the remaining control characters, invisible and unassigned code
    points) are shown as themselves: escaping each takes one more nested REPLACE, and sqlglot cannot parse
    the depth that needs (Spark's CHR() also stops at 255). The reason text reaches CSVs through csv_safety
    and the console through ``safe``.
    """
    escaped = f"REPLACE({column}, {_literal(chr(92))}, {_literal(chr(92) * 2)})"
    for code, shown in ((9, "\\t"), (10, "\\n"), (13, "\\r")):
        escaped = f"REPLACE({escaped}, CHR({code}), {_literal(shown)})"
    single, double = _literal("'"), _literal('"')
    return (f"(CASE WHEN STRPOS({column}, {single}) > 0 AND STRPOS({column}, {double}) = 0 "
            f"THEN {double} || {escaped} || {double} "
            f"ELSE {single} || REPLACE({escaped}, {single}, {_literal(chr(92) + chr(39))}) || {single} END)")


@cache
def statement(name: str) -> str:
    """The statement ``name`` (DuckDB dialect), placeholders filled in."""
    from mia_bridge.analysis.leads import SCORES

    text = resources.files(__name__).joinpath(f"{name}.sql").read_text(encoding="utf-8")
    text = text.replace("__py_repr_client__", py_repr("client"))
    for code, score in SCORES.items():
        text = text.replace(f"__score_{code}__", str(score))
    if "__score_" in text or "__py_repr_" in text:
        raise ValueError(f"{name}.sql: a placeholder without a value")
    return text


def statements() -> dict[str, str]:
    """Every statement, in ``ORDER``."""
    return {name: statement(name) for name in ORDER}


def body(name: str) -> str:
    """The statement without its final ``ORDER BY`` line (to define a view or table: rows have no order)."""
    text = statement(name).rstrip()
    head, _, last = text.rpartition("\n")
    return head if last.startswith("ORDER BY ") else text


def order_by(name: str) -> str:
    """The columns of the statement's output order, e.g. ``seq, pos`` ("": a single row)."""
    last = statement(name).rstrip().rpartition("\n")[2]
    return last.removeprefix("ORDER BY ") if last.startswith("ORDER BY ") else ""

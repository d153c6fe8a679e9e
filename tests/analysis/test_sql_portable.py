"""Every analysis statement (``analysis/sql``) transpiles from DuckDB's dialect to Spark SQL without an error
or a warning from sqlglot (the Spark engine runs the same SQL)."""

from __future__ import annotations

import logging

import pytest
import sqlglot

from mia_bridge.analysis import sql


@pytest.mark.parametrize("name", sql.ORDER)
def test_statement_transpiles_to_spark(name: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sqlglot"):
        spark = sqlglot.transpile(sql.statement(name), read="duckdb", write="spark",
                                  unsupported_level=sqlglot.ErrorLevel.RAISE)
    assert len(spark) == 1
    assert not [r for r in caplog.records if r.name.startswith("sqlglot")], caplog.text
    # and it parses back as a Spark SQL query
    assert isinstance(sqlglot.parse_one(spark[0], read="spark", error_level=sqlglot.ErrorLevel.RAISE),
                      sqlglot.exp.Query)


def test_body_and_order_split_the_final_order_by() -> None:
    for name in sql.ORDER:
        text, order = sql.body(name), sql.order_by(name)
        assert "__score_" not in text and "__py_repr_" not in text  # every placeholder filled in
        if order:
            assert sql.statement(name).rstrip().endswith(f"ORDER BY {order}") and not text.rstrip().endswith(order)
        assert set(order.replace(" ", "").split(",")) - {""} <= {"seq", "pos", "rec", "rank", "list", "value"}

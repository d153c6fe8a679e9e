"""The item table (``sql/bind_items.sql``) equals the straightforward merge of bind events and their items, and
the streamed output (batch by batch) equals it in Parquet and CSV."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mia_builders import folder, mia

from mia_bridge.analysis import outputs
from mia_bridge.analysis.api import AnalysisOptions, analyze_files
from mia_bridge.analysis.engines import embedded
from mia_bridge.analysis.intake import Intake
from mia_bridge.analysis.schema import EVENT_COLUMNS, ITEM_COLUMNS
from mia_bridge.readers import open_input

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gen_records import generate

_CONTEXT = ["record_id", "creation_time", "mailbox", "client_ip", "app_id", "client_app_id", "session_id",
            "client_info_string"]


def _input(tmp_path: Path) -> Path:
    """Generated records shuffled out of time order, plus items that must not reach the item table."""
    records = [*generate(400, seed=11),
               mia("2024-05-01T09:00:00", access="Sync", folders=[folder("\\Inbox", "<sync-item@x>")]),
               mia("2024-05-01T09:00:01", folders=[folder("\\Inbox", "  ", "<kept@x>")]),
               mia("2024-05-01T09:00:01", access="Other", folders=[folder("\\Inbox", "<other@x>")])]
    random.Random(4).shuffle(records)
    path = tmp_path / "shuffled.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def _reference(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events and items the straightforward way: filter, merge, stable sort by time then input position."""
    intake = Intake()
    intake.extend(open_input(path)[1])
    records, _, items = intake.tables()
    mask = (records["operation"].str.lower() == "mailitemsaccessed").fillna(False).astype(bool)
    events = records.loc[mask, EVENT_COLUMNS].sort_values("creation_time", kind="stable")
    binds = events.loc[events["mail_access_type"] == "Bind", _CONTEXT]
    merged = items.merge(binds, left_on="rec", right_index=True, how="inner")
    merged = merged[merged["internet_message_id"].fillna("") != ""]
    merged = merged.sort_values(["creation_time", "rec"], kind="stable")[ITEM_COLUMNS].reset_index(drop=True)
    return events.reset_index(drop=True), merged


def test_item_table_matches_the_merge(tmp_path: Path) -> None:
    path = _input(tmp_path)
    events, expected = _reference(path)
    result = analyze_files([path], AnalysisOptions())
    assert len(expected) > 1000 and len(result.items) == len(expected)
    ids = set(expected["internet_message_id"])
    assert "sync-item@x" not in ids and "other@x" not in ids and "kept@x" in ids
    pd.testing.assert_frame_equal(result.items, expected, check_dtype=False)
    pd.testing.assert_frame_equal(result.events, events, check_dtype=False)
    counts = result.summary["mail_items_accessed"]
    assert counts["unique_internet_message_ids"] == expected["internet_message_id"].nunique()
    assert int(result.contexts["items_accessed"].sum()) == len(expected)


def test_streamed_tables_equal_the_whole_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _input(tmp_path)
    monkeypatch.setattr(embedded, "BATCH_ROWS", 101)
    monkeypatch.setattr(outputs, "ROW_GROUP", 97)
    with outputs.OutputWriter(tmp_path / "streamed") as writer:  # written batch by batch during the analysis
        result = analyze_files([path], AnalysisOptions(), writer)
        writer.finish(result)
    later = analyze_files([path], AnalysisOptions())
    outputs.write_outputs(later, tmp_path / "later")  # from the work folder's Parquet files, after the analysis
    for out in (tmp_path / "streamed", tmp_path / "later"):
        written = pd.read_parquet(out / "items.parquet")
        assert len(written) == result.summary["mail_items_accessed"]["items_accessed"]
        pd.testing.assert_frame_equal(written, later.items, check_dtype=False)
        csv_rows = pd.read_csv(out / "items.csv")
        assert csv_rows["internet_message_id"].tolist() == later.items["internet_message_id"].tolist()
        assert len(pd.read_csv(out / "events.csv")) == len(later.events)
        assert pq.read_table(out / "records.parquet").equals(pq.read_table(later.files["records"]))
        assert pq.read_table(out / "records.parquet").num_rows == later.summary["records_unique"] > 400
    assert (tmp_path / "streamed" / "items.csv").read_bytes() == (tmp_path / "later" / "items.csv").read_bytes()


def test_every_table_is_streamed_and_read_only_as_far_as_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Contexts and leads grow with the number of access contexts (millions on a tenant-wide pull): the engine
    streams them like the big tables and fetches none whole (summary.json's top leads are the leads stream's
    first rows, not the query run again); the result reads a table's rows from the metadata and its head a row
    group at a time."""
    path = _input(tmp_path)
    monkeypatch.setattr(embedded, "BATCH_ROWS", 53)
    fetched: list[tuple[str, int | None]] = []
    whole = embedded.EmbeddedEngine._whole

    def spy(self: embedded.EmbeddedEngine, con: object, output: str) -> object:
        fetched.append((output, None))
        return whole(self, con, output)  # type: ignore[arg-type]

    monkeypatch.setattr(embedded.EmbeddedEngine, "_whole", spy)
    with outputs.OutputWriter(tmp_path / "streamed") as writer:
        result = analyze_files([path], AnalysisOptions(), writer)
        writer.finish(result)
    assert fetched == []
    assert not result.loaded  # nothing read whole yet
    later = analyze_files([path], AnalysisOptions())
    outputs.write_outputs(later, tmp_path / "later")
    assert later.rows("contexts") > 2 * 53 and later.rows("leads") == later.rows("contexts")
    for name in ("synced_folders", "throttled_windows", "contexts", "leads"):
        streamed, kept = tmp_path / "streamed", tmp_path / "later"  # row groups differ, content does not
        assert (streamed / f"{name}.csv").read_bytes() == (kept / f"{name}.csv").read_bytes(), name
        assert pq.read_table(streamed / f"{name}.parquet").equals(pq.read_table(kept / f"{name}.parquet")), name
        assert later.rows(name) == len(later.table(name))  # type: ignore[arg-type]
    head = later.head("leads", 10)
    assert head is not None
    pd.testing.assert_frame_equal(head, later.leads.head(10))
    assert [(r["rank"], r["mailbox"], r["reasons"]) for r in result.summary["top_leads"]] == \
        list(zip(head["rank"], head["mailbox"], head["reasons"], strict=True))
    assert later.message_lookup is None and later.rows("message_lookup") == 0


def test_the_top_leads_are_the_first_rows_of_the_stream_across_batches() -> None:
    """Every batch passes through unchanged; the first rows are kept even when they span several batches."""
    table = pa.table({"rank": list(range(1, 24))})
    kept: list[pa.RecordBatch] = []
    passed = list(embedded._head(iter(table.to_batches(max_chunksize=3)), 10, kept))
    assert pa.Table.from_batches(passed).equals(table)
    assert pa.Table.from_batches(kept).column("rank").to_pylist() == list(range(1, 11))
    nothing: list[pa.RecordBatch] = []
    assert list(embedded._head(iter([]), 10, nothing)) == [] and nothing == []


def test_the_late_plan_is_the_statements_own_sql_without_the_event_columns() -> None:
    """The embedded engine sorts bind_items without its event's columns and gathers them by seq afterwards:
    its narrow query is bind_items.sql's join, filter and order (defined once), only the projection differs."""
    plan = embedded.late_plan("bind_items")
    assert plan is not None and plan.key == "seq" and set(_CONTEXT) <= set(plan.gathered)
    assert "JOIN events AS e ON e.rec = i.rec" in plan.narrow and plan.narrow.endswith("ORDER BY seq, pos")
    assert "e.record_id" not in plan.narrow and "e.seq" in plan.narrow
    assert embedded.late_plan("contexts") is None


def test_gathering_merges_keys_repeated_across_batches_and_refuses_a_missing_key() -> None:
    import pyarrow as pa

    plan = embedded.LatePlan("", "events", "seq", ("who",))
    narrow = [pa.record_batch({"seq": [1, 1, 2], "item": ["a", "b", "c"]}),
              pa.record_batch({"seq": [2, 2, 5], "item": ["d", "e", "f"]}),
              pa.record_batch({"seq": [5], "item": ["g"]})]
    table = [pa.record_batch({"seq": [1, 2], "who": ["x", "y"]}), pa.record_batch({"seq": [3], "who": ["z"]}),
             pa.record_batch({"seq": [4, 5], "who": ["v", "w"]})]
    out = list(embedded._gather(iter(narrow), iter(table), plan, ["item", "who"]))
    assert [b.to_pydict() for b in out] == [
        {"item": ["a", "b", "c"], "who": ["x", "x", "y"]}, {"item": ["d", "e", "f"], "who": ["y", "y", "w"]},
        {"item": ["g"], "who": ["w"]}]
    with pytest.raises(embedded.ExportError, match="no match"):
        missing = iter([pa.record_batch({"seq": [3], "item": ["a"]})])
        list(embedded._gather(missing, iter([pa.record_batch({"seq": [1, 2, 4], "who": ["x", "y", "z"]})]), plan,
                              ["item", "who"]))

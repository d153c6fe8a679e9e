"""The positional bind-item join equals the straightforward merge, in whole, in slices and in the counts."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pandas as pd
import pytest
from mia_builders import folder, mia

from mia_bridge.analysis import mailitemsaccessed as m
from mia_bridge.analysis import outputs
from mia_bridge.analysis.api import AnalysisOptions, analyze_files
from mia_bridge.analysis.intake import Intake
from mia_bridge.analysis.schema import ITEM_COLUMNS
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


def _reference(events: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    binds = events.loc[events["mail_access_type"] == "Bind", _CONTEXT]
    merged = items.merge(binds, left_on="rec", right_index=True, how="inner")
    merged = merged[merged["internet_message_id"].fillna("") != ""]
    return merged.sort_values(["creation_time", "rec"], kind="stable")[ITEM_COLUMNS].reset_index(drop=True)


def test_positional_join_matches_the_merge(tmp_path: Path) -> None:
    intake = Intake()
    intake.extend(open_input(_input(tmp_path))[1])
    records, folders, items = intake.tables()
    events = m.event_table(records)
    lazy = m.bind_items(events, items)
    assert lazy.order is not None  # the input is out of order and has non-bind items: the general path
    expected = _reference(events, items)
    assert len(expected) > 1000 and len(lazy) == len(expected)
    ids = set(expected["internet_message_id"])
    assert "sync-item@x" not in ids and "other@x" not in ids and "kept@x" in ids
    pd.testing.assert_frame_equal(lazy.frame(), expected)
    slices = pd.concat([lazy.frame(start, start + 97) for start in range(0, len(lazy), 97)], ignore_index=True)
    pd.testing.assert_frame_equal(slices, expected)
    synced = m.synced_folder_table(events, folders)
    pd.testing.assert_frame_equal(m.context_table(events, lazy, synced), m.context_table(events, expected, synced))
    assert lazy.message_id_codes()[1] == expected["internet_message_id"].nunique()


def test_written_item_table_equals_the_materialised_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _input(tmp_path)
    result = analyze_files([path], AnalysisOptions())
    monkeypatch.setattr(outputs, "ITEM_SLICE", 101)
    outputs.write_outputs(result, tmp_path / "out")  # items not yet built: written slice by slice
    written = pd.read_parquet(tmp_path / "out" / "items.parquet")
    assert len(written) == result.summary["mail_items_accessed"]["items_accessed"]
    pd.testing.assert_frame_equal(written, result.items, check_dtype=False)
    csv_rows = pd.read_csv(tmp_path / "out" / "items.csv")
    assert csv_rows["internet_message_id"].tolist() == result.items["internet_message_id"].tolist()

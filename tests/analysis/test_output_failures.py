"""A writer that fails (disk full, a folder in the way) ends the run with a clear error, never a hang."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from mia_builders import folder, mia

import mia_bridge.analysis.outputs as outputs
from mia_bridge.analysis.api import AnalysisOptions, analyze_records, write_outputs
from mia_bridge.errors import ExportError


class _FailingWriter:
    failure: Exception = OSError(28, "No space left on device")

    def __init__(self, path: Any, schema: Any) -> None:
        pass

    def write_table(self, table: Any) -> None:
        raise self.failure

    def close(self) -> None:
        pass


def _result() -> Any:
    records = [mia(f"2024-05-01T10:{i % 60:02d}:00", record_id=f"r-{i}",
                   folders=[folder("\\Inbox", *(f"<m{i}-{k}@x>" for k in range(5)))]) for i in range(400)]
    return analyze_records(records, AnalysisOptions(), source="t")


@pytest.mark.parametrize(("failure", "raised", "text"), [
    (OSError(28, "No space left on device"), ExportError, "No space left on device"),
    (pa.ArrowInvalid("a value the writer cannot take"), pa.ArrowInvalid, "cannot take"),
])
def test_item_writer_failing_on_every_slice_raises_without_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception, raised: type[Exception], text: str
) -> None:
    monkeypatch.setattr(outputs, "ROW_GROUP", 100)  # 2,000 items: 20 batches, far more than the queue holds
    monkeypatch.setattr(_FailingWriter, "failure", failure)
    monkeypatch.setattr(outputs, "pa_csv", SimpleNamespace(CSVWriter=_FailingWriter, write_csv=pa_csv.write_csv))
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            write_outputs(_result(), tmp_path / "out")
            outcome.append(None)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "write_outputs hung after a writer failed"
    assert isinstance(outcome[0], raised)
    assert text in str(outcome[0])


def test_a_file_where_the_output_folder_should_be_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(ExportError, match="cannot write the analysis outputs"):
        write_outputs(_result(), blocker)

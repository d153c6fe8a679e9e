"""Property test: real sample files mutated at the byte level never crash ``mia analyze``; counts reconcile.

Each example takes a real public export (Sentinel OfficeActivity JSON and CSV, Defender hunting JSON lines)
or a file of real records, applies random byte-level damage (cuts, inserted bytes such as NUL, ESC, stray
quotes and brackets or invalid UTF-8, deleted and repeated slices, wrapping in an array, gzip, a cut gzip),
and runs the CLI in-process beside a good file: exit 0, no internal error, every count reconciled.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import realdata_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mia_bridge.cli.app import main

SAMPLES = {
    "sentinel.json": realdata_path("otrf-goldensaml", "OfficeActivityEvents.json", module_level=True),
    "defender.json": realdata_path("otrf-goldensaml", "Microsoft365DefenderEvents.json", module_level=True),
    "inbox_rules.csv": realdata_path("sentinel-training-lab", "office_activity_inbox_rule.csv", module_level=True),
}


def _sample_bytes() -> dict[str, bytes]:
    found = {name: path.read_bytes() for name, path in SAMPLES.items()}
    raw = [json.loads(line)["RawEventData"] for line in found["defender.json"].decode("utf-8").splitlines()
           if line.strip() and isinstance(json.loads(line).get("RawEventData"), dict)]
    found["raw.jsonl"] = "".join(json.dumps(r) + "\n" for r in raw * 3).encode()  # with duplicates
    head = realdata_path("sentinel-training-lab", "office_activity.csv", module_level=True).read_bytes()
    found["office_activity.csv"] = head[: head.find(b"\r\n", 40_000) + 2]  # the header and some rows
    return found


SAMPLE = _sample_bytes()
INSERTS = [b"\x00", b"\x1b]0;x\x07", b'"', b"]", b"[", b"{", b"}", b",", b"\n", b"\r\n", b"\xff\xfe", b"\xc3",
           b"\xed\xa0\x80", b"0001-01-01T00:00:00", b"[" * 3000, b'{"Id":"x","Operation":"X"}']


@st.composite
def damaged(draw: Callable[..., Any]) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SAMPLE)))
    data = SAMPLE[name]
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["cut", "insert", "delete", "repeat", "wrap"]))
        if action == "cut":
            data = data[:at]
        elif action == "insert":
            data = data[:at] + draw(st.sampled_from(INSERTS)) + data[at:]
        elif action == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 200)):]
        elif action == "repeat":
            data = data[:at] + data[at:at + draw(st.integers(1, 500))] * 2 + data[at:]
        elif not name.endswith(".csv"):
            data = b"[" + data.replace(b"}\n{", b"},\n{").replace(b"}\r\n{", b"},\r\n{") + b"]"
    if draw(st.booleans()):
        data = gzip.compress(data, mtime=0)
        if draw(st.booleans()):
            data = data[: draw(st.integers(10, len(data)))]
        name += ".gz"
    return name, data


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=damaged())
def test_damaged_real_files_never_crash_and_always_reconcile(
    case: tuple[str, bytes], tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
) -> None:
    name, data = case
    folder = tmp_path_factory.mktemp("damaged")
    path = folder / name
    path.write_bytes(data)
    good = folder / "good.jsonl"
    good.write_text(json.dumps({"Id": "good-1", "CreationTime": "2024-05-01T10:00:00", "Operation": "X"}) + "\n",
                    encoding="utf-8")
    out = folder / "out"
    code = main(["analyze", str(path), str(good), "--out", str(out)])
    captured = capsys.readouterr()
    assert "internal error" not in captured.err and "Traceback" not in captured.err, captured.err
    assert code == 0, captured.err  # the good file is always read: a damaged one never fails the run
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert s["records_read"] == s["records_parsed"] + s["records_quarantined"]
    assert s["records_parsed"] == s["records_unique"] + s["duplicates_removed"]
    assert s["records_read"] == sum(entry["records_read"] for entry in s["inputs"])
    assert s["records_quarantined"] == sum(entry["records_quarantined"] for entry in s["inputs"])
    assert s["records_parsed"] >= 1
    quarantined = (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(quarantined) == s["records_quarantined"]

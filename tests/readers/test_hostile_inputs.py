"""A hostile corpus generated from pieces: every record seen is counted, nothing crashes, exit codes hold.

Files are built from random sequences of good and hostile pieces (bad elements, several arrays, arrays
followed by lines, trailing text, nesting past the limit, times the tables cannot hold, NUL bytes anywhere,
oversized records, lone surrogates, huge numbers) in every layout (JSON lines, JSON arrays, Purview CSV,
plain or gzip). The expected counts follow from the pieces, so each file checks itself:
``records_read = records_parsed + records_quarantined`` with both parts exact.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mia_bridge.analysis.api import AnalysisOptions, analyze_files
from mia_bridge.analysis.columnar import read_csv_chunks, read_jsonl_chunks
from mia_bridge.cli.app import main
from mia_bridge.errors import UnreadableInput
from mia_bridge.readers import auditdata_csv, raw_auditdata_json
from mia_bridge.readers.registry import prepare

LIMIT = 64 * 1024  # --max-record-bytes for the corpus (the default, 64 MB, is exercised by the bomb test)
PURVIEW = ["RecordId", "CreationDate", "RecordType", "Operation", "UserId", "AuditData"]


def record(i: int, **extra: Any) -> dict[str, Any]:
    base = {"CreationTime": "2024-05-01T10:00:00", "Id": f"00000000-0000-4000-8000-{i:012d}",
            "Operation": "New-InboxRule", "RecordType": 1, "UserId": "victim@contoso.example",
            "Parameters": [{"Name": "ForwardTo", "Value": f"x{i}@attacker.example"}]}
    base.update(extra)
    return base


@dataclass(frozen=True)
class Piece:
    """One record's text, and whether a reader must take it (good) or quarantine it."""

    text: str
    good: bool
    good_in_csv: bool | None = None  # when the CSV's own columns make it readable (CreationDate)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# Hostile pieces, each one record; the argument makes each unique (its Id).
HOSTILE: dict[str, Callable[[int], str]] = {
    "invalid json": lambda i: '{"Id": "bad-' + str(i) + '", "Operation": tru}',
    "not an object": lambda i: str(i),
    "nested past the limit": lambda i: json.dumps(record(i)).replace('"Parameters"', f'"D": {_nested(150)}, "P"'),
    "nested past Python": lambda i: json.dumps(record(i)).replace('"Parameters"', f'"D": {_nested(5000)}, "P"'),
    "year 1": lambda i: json.dumps(record(i, CreationTime="0001-01-01T00:00:00")),
    "year 9999": lambda i: json.dumps(record(i, CreationTime="9999-12-31T23:59:59")),
    "NUL in a value": lambda i: json.dumps(record(i)).replace("victim", "vic\x00tim"),
    "NUL between keys": lambda i: json.dumps(record(i)).replace(', "Operation"', ',\x00"Operation"'),
    "oversized": lambda i: json.dumps(record(i, Pad="p" * (LIMIT + 10))),
    "no time": lambda i: json.dumps({k: v for k, v in record(i).items() if k != "CreationTime"}),
}
# Odd but valid: these must be read, not quarantined.
ODD_GOOD: dict[str, Callable[[int], str]] = {
    "lone surrogate": lambda i: json.dumps(record(i, Subject="\ud800 =cmd|' /C calc'!A0")),
    "huge numbers": lambda i: json.dumps(record(i, OperationCount=10**30, RecordType=10**25)),
    "nested 90 deep": lambda i: json.dumps(record(i)).replace('"Parameters"', f'"D": {_nested(90)}, "P"'),
    "escape codes": lambda i: json.dumps(record(i, Name="\x1b]0;pwned\x07\x1b[2J")),
    "escaped NUL": lambda i: json.dumps(record(i, Name="a\u0000b")),  # \\u0000 in JSON: a valid value
}

PIECE = st.one_of(
    st.builds(lambda i: ("good", i), st.integers(0, 10**6)),
    st.tuples(st.sampled_from(sorted(HOSTILE)), st.integers(0, 10**6)),
    st.tuples(st.sampled_from(sorted(ODD_GOOD)), st.integers(0, 10**6)),
)


def piece(kind: str, i: int) -> Piece:
    if kind == "good":
        return Piece(json.dumps(record(i)), True)
    if kind in HOSTILE:
        return Piece(HOSTILE[kind](i), False, True if kind == "no time" else None)
    return Piece(ODD_GOOD[kind](i), True)


def _lines(pieces: list[Piece]) -> tuple[str, int, int]:
    return "".join(p.text + "\n" for p in pieces), sum(p.good for p in pieces), sum(not p.good for p in pieces)


def _arrays(pieces: list[Piece], cuts: list[int], tail: int) -> tuple[str, int, int]:
    """Several arrays (split at ``cuts``), the last ``tail`` pieces as lines after them, then stray text."""
    body, tail_pieces = pieces[: len(pieces) - tail], pieces[len(pieces) - tail:]
    bounds = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    parts = [body[a:b] for a, b in itertools.pairwise(bounds)] or [[]]
    text = "\n".join("[\n" + ",\n".join(p.text for p in part) + "\n]" for part in parts) + "\n"
    text += "".join(p.text + "\n" for p in tail_pieces) + "this is not JSON\n"
    good = sum(p.good for p in pieces)
    return text, good, len(pieces) - good + 1  # + the stray text line


def _csv(pieces: list[Piece]) -> tuple[str, int, int]:
    handle = io.StringIO()
    writer = csv.writer(handle, lineterminator="\r\n")
    writer.writerow(PURVIEW)
    for number, p in enumerate(pieces):
        writer.writerow([f"r{number}", "5/1/2024 10:00:00 AM", "1", "New-InboxRule", "u@contoso.example", p.text])
    good = sum(p.good if p.good_in_csv is None else p.good_in_csv for p in pieces)
    return handle.getvalue(), good, len(pieces) - good


def _write(path: Path, text: str, gz: bool) -> Path:
    data = text.encode("utf-8", "surrogatepass")
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def _check(paths: list[Path], good: int, bad: int) -> dict[str, Any]:
    result = analyze_files(paths, AnalysisOptions(max_record_bytes=LIMIT))
    s = result.summary
    assert s["records_read"] == s["records_parsed"] + s["records_quarantined"]
    assert (s["records_parsed"], s["records_quarantined"]) == (good, bad), result.quarantine[["line", "reason"]]
    assert s["records_parsed"] == s["records_unique"] + s["duplicates_removed"]
    for entry in s["inputs"]:
        assert entry["records_read"] == entry["records_quarantined"] + (entry["records_read"]
                                                                          - entry["records_quarantined"])
    return s


def _vectorised(path: Path, made: list[Piece], layout: str, gz: bool) -> bool:
    """Whether the vectorised reader takes this file (written with every piece as it is)."""
    text = _csv(made)[0] if layout == "csv" else _lines(made)[0]
    written = _write(path, text, gz)
    try:
        reader, src, sniffed = prepare(written, None, LIMIT)
    except UnreadableInput:
        return False
    if layout == "csv":
        return reader.NAME in auditdata_csv.NAMES and read_csv_chunks(src, sniffed, reader.NAME) is not None
    return reader.NAME == raw_auditdata_json.NAME and read_jsonl_chunks(src) is not None


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(PIECE, min_size=1, max_size=12), layout=st.sampled_from(["lines", "arrays", "csv"]),
       gz=st.booleans(), cuts=st.lists(st.integers(0, 20), max_size=3), tail=st.integers(0, 3))
def test_generated_hostile_files_are_counted_exactly(
    tmp_path_factory: pytest.TempPathFactory, pieces: list[tuple[str, int]], layout: str, gz: bool,
    cuts: list[int], tail: int,
) -> None:
    made = [piece(kind, i) for kind, i in pieces]
    folder = tmp_path_factory.mktemp("hostile")
    name = f"input.{'csv' if layout == 'csv' else 'json'}"
    if layout != "arrays" and _vectorised(folder / name, made, layout, gz):
        # Documented: the vectorised readers parse only the fields analysis uses, so a record nested past the
        # limit in another field is read there (the record readers, which parse it all, quarantine it).
        made = [Piece(p.text, True, True) if "[[[[[[[[" in p.text else p for p in made]
    if layout == "lines":
        text, good, bad = _lines(made)
    elif layout == "arrays":
        text, good, bad = _arrays(made, cuts, min(tail, len(made)))
    else:
        text, good, bad = _csv(made)
    path = _write(folder / name, text, gz)
    good_file = _write(folder / "good.jsonl", json.dumps(record(10**7)) + "\n", False)
    if layout == "lines" and not any(p.text.startswith("{") for p in made):
        # Not one JSON object in it: no format is recognised, the file is reported, the other one read.
        s = _check([path, good_file], 1, 0)
        assert "unsupported format" in s["inputs"][0]["error"]
        return
    s = _check([path, good_file], good + 1, bad)
    assert s["inputs"][0]["error"] is None


def test_one_bad_element_does_not_end_the_array(tmp_path: Path) -> None:
    """300 records with bad elements spread through them: 300 read, every good one kept."""
    texts = [json.dumps(record(i)) for i in range(300)]
    bad = {10: '{"Id": "b1", "x": tru}', 100: '{"Id": "b2", "x": "unterminated}', 200: '{"Id": "b3", "x": 1',
           250: "garbage"}
    for index, text in bad.items():
        texts[index] = text
    path = tmp_path / "array.json"
    path.write_text("[\n" + ",\n".join(texts) + "\n]\n", encoding="utf-8")
    s = _check([path], 296, 4)
    assert s["inputs"][0]["records_read"] == 300


def test_several_arrays_and_lines_after_them_are_all_read(tmp_path: Path) -> None:
    path = tmp_path / "mixed.json"
    text = json.dumps([record(1), record(2)]) + json.dumps([record(3)]) + "\n" + json.dumps(record(4)) + "\n"
    path.write_text(text + "] trailing text", encoding="utf-8")
    _check([path], 4, 1)


def test_truncated_json_line_does_not_take_the_next_lines(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    lines = [json.dumps(record(i)) for i in range(5)]
    lines[1] = lines[1][:40]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _check([path], 4, 1)


@pytest.mark.parametrize("where", ["first", "last"])
@pytest.mark.parametrize("layout", ["jsonl", "csv"])
def test_a_nul_byte_is_treated_the_same_wherever_it_is(tmp_path: Path, where: str, layout: str) -> None:
    """At the start of the file or past the 64 KB probe, plain or gzip: only its record is quarantined."""
    made = [Piece(json.dumps(record(i)), True) for i in range(2000)]
    index = 0 if where == "first" else len(made) - 1
    made[index] = Piece(HOSTILE["NUL in a value"](index), False)
    text, good, bad = _csv(made) if layout == "csv" else _lines(made)
    for gz in (False, True):
        result = analyze_files([_write(tmp_path / f"nul.{layout}", text, gz)], AnalysisOptions())
        s = result.summary
        assert (s["records_parsed"], s["records_quarantined"]) == (good, bad)
        assert list(result.quarantine["reason"]) == ["NUL byte in the record"]


@pytest.mark.parametrize("layout", ["jsonl", "csv"])
def test_times_outside_the_tables_are_quarantined_on_both_paths(tmp_path: Path, layout: str) -> None:
    """Year 1 and 9999 in an otherwise clean bulk file (the vectorised path) and a messy one (record by record)."""
    for messy in (False, True):
        made = [Piece(json.dumps(record(i)), True) for i in range(50)]
        made[7] = Piece(HOSTILE["year 1"](7), False)
        made[30] = Piece(HOSTILE["year 9999"](30), False)
        if messy:
            made[40] = Piece(HOSTILE["invalid json"](40), False)
        text, good, bad = _csv(made) if layout == "csv" else _lines(made)
        result = analyze_files([_write(tmp_path / f"t{messy}.{layout}", text, False)], AnalysisOptions())
        assert (result.summary["records_parsed"], result.summary["records_quarantined"]) == (good, bad)
        assert sum("outside what the tables can hold" in r for r in result.quarantine["reason"]) == 2


def test_oversized_records_are_quarantined_with_an_excerpt(tmp_path: Path) -> None:
    big = json.dumps(record(1, Pad="p" * 300_000))
    for name, text in (("big.jsonl", f"{json.dumps(record(0))}\n{big}\n{json.dumps(record(2))}\n"),
                       ("big.json", f"[{json.dumps(record(0))},\n{big},\n{json.dumps(record(2))}]"),
                       ("big.csv", _csv([Piece(json.dumps(record(0)), True), Piece(big, False),
                                         Piece(json.dumps(record(2)), True)])[0])):
        out = tmp_path / f"out-{name}"
        path = _write(tmp_path / name, text, False)
        assert main(["analyze", str(path), "--out", str(out), "--max-record-bytes", "100000"]) == 0
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        assert (summary["records_parsed"], summary["records_quarantined"]) == (2, 1), name
        entry = json.loads((out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()[0])
        assert "larger than the limit of 100,000 bytes" in entry["reason"]
        assert 0 < len(entry["raw"]) <= 4096 and big[:50] in entry["raw"].replace('""', '"')


def test_truncated_gzip_beside_a_good_file_names_the_file_and_offset(tmp_path: Path) -> None:
    data = gzip.compress("".join(json.dumps(record(i)) + "\n" for i in range(3000)).encode(), mtime=0)
    damaged = tmp_path / "damaged.jsonl.gz"
    damaged.write_bytes(data[: len(data) // 2])
    good = _write(tmp_path / "good.jsonl", json.dumps(record(10**7)) + "\n", False)
    out = tmp_path / "out"
    assert main(["analyze", str(damaged), str(good), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["records_read"] == summary["records_parsed"] + summary["records_quarantined"]
    assert summary["records_parsed"] > 1  # the records before the damage, and the good file
    reasons = [json.loads(x) for x in (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]
    last = reasons[-1]
    assert last["file"] == str(damaged) and "damaged gzip data after" in last["reason"]
    assert "compressed byte" in last["reason"]


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mia_bridge.cli.app", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_non_regular_inputs_are_refused_at_once(tmp_path: Path) -> None:
    """A FIFO (which would block forever if opened), a directory, a device: exit 1, nothing read."""
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    good = _write(tmp_path / "good.jsonl", json.dumps(record(1)) + "\n", False)
    for bad, kind in ((fifo, "FIFO"), (tmp_path, "directory"), (Path("/dev/null"), "character device")):
        proc = _run(["analyze", str(good), str(bad), "--out", str(tmp_path / "out")], timeout=60)
        assert proc.returncode == 1, proc.stderr
        assert kind in proc.stderr and str(bad) in proc.stderr and "Traceback" not in proc.stderr


def test_nothing_readable_exits_1_and_something_readable_exits_0(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 100)
    empty = tmp_path / "empty.json"
    empty.write_text("", encoding="utf-8")
    assert main(["analyze", str(junk), str(empty), "--out", str(tmp_path / "o1")]) == 1
    not_json = _write(tmp_path / "n.jsonl", "not json\nat all\n", False)
    assert main(["analyze", str(not_json), "--out", str(tmp_path / "o2")]) == 1  # no format recognised
    broken = _write(tmp_path / "g.jsonl", '{"Id": 1, "Operation": tru}\n{broken\n', False)
    assert main(["analyze", str(broken), "--out", str(tmp_path / "o3")]) == 0  # read: every record quarantined
    summary = json.loads((tmp_path / "o3" / "summary.json").read_text(encoding="utf-8"))
    assert (summary["records_read"], summary["records_quarantined"]) == (2, 2)


_LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
import mia_bridge.readers.decoding as decoding
if sys.argv[1] == "no-ratio":
    decoding.MAX_GZIP_RATIO = 10**9  # leave it to the record size limit alone
from mia_bridge.cli.app import main
code = main(sys.argv[2:])
# VmHWM is this program's own peak: ru_maxrss survives execve and would start at the forking pytest's size
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("PEAK", int(hwm.split()[1]) * 1024)
sys.exit(code)
"""


def _bomb(path: Path, gib: int) -> Path:
    """A ~1 MB gzip per GiB expanding to one line of ``gib`` GiB (members of 16 MiB of 'a'), then a record."""
    member = gzip.compress(b"a" * (16 << 20), compresslevel=9, mtime=0)
    with path.open("wb") as handle:
        handle.write(gzip.compress(b'{"Id":"bomb","CreationTime":"2024-05-01T10:00:00","Operation":"X","P":"',
                                   mtime=0))
        for _ in range(64 * gib):
            handle.write(member)
        handle.write(gzip.compress(b'"}\n' + json.dumps(record(5)).encode() + b"\n", mtime=0))
    return path


@pytest.mark.parametrize(("mode", "gib"), [("ratio", 2), ("no-ratio", 1)])
def test_gzip_bomb_stays_under_1_gb(tmp_path: Path, mode: str, gib: int) -> None:
    """Under a 1 GB address-space limit the run completes: the bomb is stopped (by its expansion ratio, or by
    the record size limit reading it a chunk at a time), the good file beside it is read."""
    bomb = _bomb(tmp_path / "bomb.jsonl.gz", gib)
    assert bomb.stat().st_size < 3 << 20
    good = _write(tmp_path / "good.jsonl", json.dumps(record(1)) + "\n", False)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", _LIMITED, mode, "analyze", str(bomb), str(good), "--out", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak = int(proc.stdout.split("PEAK")[-1])
    assert peak < 1 << 30
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["records_read"] == summary["records_parsed"] + summary["records_quarantined"]
    assert summary["records_parsed"] >= 1 and summary["records_quarantined"] >= 1
    reasons = (out / "quarantine.jsonl").read_text(encoding="utf-8")
    assert ("decompression bomb" in reasons) if mode == "ratio" else ("larger than the limit" in reasons)


def test_an_array_whose_start_was_cut_off_reads_its_objects(tmp_path: Path) -> None:
    """The second half of a split array: objects with commas, then "]": every object read, "]" quarantined."""
    path = tmp_path / "tail.json"
    path.write_text(",\n".join(json.dumps(record(i)) for i in range(5)) + "\n]\n", encoding="utf-8")
    result = analyze_files([path], AnalysisOptions())
    assert (result.summary["records_parsed"], result.summary["records_quarantined"]) == (5, 1)
    assert list(result.quarantine["line"]) == [6]

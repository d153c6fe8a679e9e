"""Benchmark ``mia analyze`` on N generated MailItemsAccessed records, against the straightforward approach.

    .venv/bin/python benchmarks/bench_analyze.py [-n 1000000] [--csv-n 100000] [--straightforward-n 200000]
                                                 [--repeat 3] [--shape both|uniform|realistic]

Both record shapes by default (gen_records.py): ``uniform`` (50 mailboxes, one session each) and
``realistic`` (thousands of mailboxes and IPs, a new SessionId every ~2 records, ~6 new message ids per
record), since a cost that grows with the number of groups hides in the first.

Generates N records as raw JSON lines (and --csv-n records as a Purview CSV), runs ``mia analyze`` on each
in a fresh process (wall time includes interpreter start and writing every output), and reports wall time
and peak RSS. In the same run it times the straightforward approach (per-row ``json.loads`` +
``pandas.json_normalize`` + ``explode``, computing the same headline counts, no outputs written) on
--straightforward-n records and extrapolates it linearly to N, saying so (``--straightforward-n`` equal to N
times it on the same file: no extrapolation; it needs ≈15 GB of memory at 1,000,000).

The embedded engine (DuckDB) is what ``mia analyze`` runs; the median run's time per phase (read, base
tables, each SQL statement with the writing of its table) is printed as "where the time goes".

Before each timed run the previous run's outputs are removed and dirty pages flushed (``os.sync``), so no
run pays for another's write-back.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gen_records import SHAPES, write_jsonl, write_purview_csv  # noqa: E402

_CHILD = """
import json, resource, sys, time
start = time.perf_counter()
timings = {}
if sys.argv[1] == "mia":
    from mia_bridge.cli.app import main
    code = main(sys.argv[3:])
    from mia_bridge.analysis import api
    timings = api.TIMINGS
else:
    sys.path.insert(0, sys.argv[2])
    from bench_analyze import straightforward
    print(json.dumps(straightforward(sys.argv[3])), file=sys.stderr)
    code = 0
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"code": code, "inner_seconds": time.perf_counter() - start, "peak_bytes": usage.ru_maxrss * 1024,
                  "user_seconds": usage.ru_utime, "sys_seconds": usage.ru_stime, "timings": timings}))
"""


def straightforward(path: str) -> dict[str, int]:
    """The obvious pandas approach: json.loads per line, json_normalize, explode the nested lists."""
    import pandas as pd

    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    frame = pd.json_normalize(rows, max_level=0).drop_duplicates(subset=["Id"])
    events = frame[frame["Operation"] == "MailItemsAccessed"]
    props = events[["Id", "OperationProperties"]].explode("OperationProperties").dropna()
    props = pd.concat([props[["Id"]].reset_index(drop=True),
                       pd.json_normalize(props["OperationProperties"].tolist())], axis=1)
    access = props[props["Name"] == "MailAccessType"].set_index("Id")["Value"]
    folders = events[["Id", "Folders"]].explode("Folders").dropna()
    folders = pd.concat([folders[["Id"]].reset_index(drop=True),
                         pd.json_normalize(folders["Folders"].tolist()).add_prefix("folder_")], axis=1)
    items = folders[["Id", "folder_Path", "folder_FolderItems"]].explode("folder_FolderItems")
    items = items.dropna(subset=["folder_FolderItems"])
    items = pd.concat([items[["Id", "folder_Path"]].reset_index(drop=True),
                       pd.json_normalize(items["folder_FolderItems"].tolist())], axis=1)
    binds = set(access[access == "Bind"].index)
    items = items[items["Id"].isin(binds)]
    mids = items["InternetMessageId"].str.strip("<>").str.lower()
    return {"events": len(events), "bind_events": len(binds), "items_accessed": len(items),
            "unique_internet_message_ids": int(mids.nunique())}


def _run(kind: str, args: list[str], out: Path | None = None) -> dict[str, float]:
    if out is not None:
        shutil.rmtree(out, ignore_errors=True)
    os.sync()
    wall = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, kind, str(HERE), *args], capture_output=True, text=True,
                          check=False, env={**os.environ, "PYTHONHASHSEED": "0"})
    elapsed = time.perf_counter() - wall
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = elapsed
    result["cpu_seconds"] = result["user_seconds"] + result["sys_seconds"]  # every thread of the process
    if kind == "straightforward":
        result["counts"] = json.loads(proc.stderr.strip().splitlines()[-1])
    return result


def _summary(out: Path) -> dict[str, object]:
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {k: data["mail_items_accessed"][k] for k in ("events", "bind_events", "items_accessed",
                                                         "unique_internet_message_ids")}


def main() -> None:
    parser = argparse.ArgumentParser(description="benchmark mia analyze")
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--csv-n", type=int, default=100_000)
    parser.add_argument("--straightforward-n", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of mia analyze on the N records (median kept)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="keep inputs already generated in --workdir")
    parser.add_argument("--shape", choices=["both", *sorted(SHAPES)], default="both")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mia-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    for shape in (sorted(SHAPES, reverse=True) if args.shape == "both" else [args.shape]):
        print(f"\n## shape: {shape}\n")
        bench_shape(shape, args, work)


def bench_shape(shape: str, args: argparse.Namespace, work: Path) -> None:
    """Generate this shape's inputs (or reuse them) and print its table."""
    generate = SHAPES[shape]
    straightforward_n = args.straightforward_n
    jsonl, small, csv_path = (work / f"{shape}-records-{args.n}.jsonl",  # named by shape and size for --reuse
                              work / f"{shape}-small-{straightforward_n}.jsonl",
                              work / f"{shape}-purview-{args.csv_n}.csv")
    if straightforward_n >= args.n:  # both on the same file
        straightforward_n, small = args.n, jsonl
    started = time.perf_counter()
    for path, n, writer in ((jsonl, args.n, write_jsonl), (small, straightforward_n, write_jsonl),
                            (csv_path, args.csv_n, write_purview_csv)):
        if not (args.reuse and path.exists()):
            writer(path, generate(n))  # deterministic: same n, same records
    print(f"generated {args.n:,} JSONL records ({jsonl.stat().st_size / 1e9:.2f} GB), {args.csv_n:,} Purview CSV "
          f"rows and {straightforward_n:,} for the straightforward run in {time.perf_counter() - started:.1f} s")

    load_before = os.getloadavg()
    runs = [_run("mia", ["analyze", str(jsonl), "--out", str(work / "out-jsonl")], work / "out-jsonl")
            for _ in range(max(args.repeat, 1))]
    ours = sorted(runs, key=lambda r: r["wall_seconds"])[len(runs) // 2]  # the median run
    ours_small = _run("mia", ["analyze", str(small), "--out", str(work / "out-small")], work / "out-small")
    ours_csv = _run("mia", ["analyze", str(csv_path), "--out", str(work / "out-csv")], work / "out-csv")
    plain = _run("straightforward", [str(small)])
    extrapolated = plain["wall_seconds"] * args.n / straightforward_n

    load_after = os.getloadavg()
    extrapolated_cpu = plain["cpu_seconds"] * args.n / straightforward_n

    def row(label: str, n: int, res: dict[str, float], note: str = "") -> str:
        return (f"| {label} | {n:,} | {res['wall_seconds']:.1f} | {res['cpu_seconds']:.1f} "
                f"({res['user_seconds']:.1f} user + {res['sys_seconds']:.1f} sys) | "
                f"{res['peak_bytes'] / 2**20:,.0f} | {n / res['wall_seconds']:,.0f} | {note} |")

    print(f"\nload average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in load_before)}; "
          f"after: {', '.join(f'{v:.2f}' for v in load_after)} ({os.cpu_count()} cores)")
    print("\n| run | records | wall s | CPU s | peak RSS MiB | records/s | note |\n|---|---|---|---|---|---|---|")
    for number, res in enumerate(runs, start=1):
        note = "end to end: start-up, read, analyse, write all outputs" + (" (median)" if res is ours else "")
        print(row(f"mia analyze, raw JSONL, run {number} of {len(runs)}", args.n, res, note))
    print(row("mia analyze, raw JSONL", straightforward_n, ours_small, "same input as the straightforward run"))
    print(row("mia analyze, Purview CSV", args.csv_n, ours_csv, "vectorised AuditData-CSV path"))
    print(row("straightforward (json.loads + json_normalize + explode)", straightforward_n, plain,
              "counts only, no outputs"))
    how = "measured on the same file" if straightforward_n == args.n else "extrapolated linearly"
    print(f"\nstraightforward at {args.n:,} ({how}): {extrapolated:.0f} s wall, {extrapolated_cpu:.0f} s CPU")
    print(f"speed-up at {args.n:,} (straightforward / our median run): {extrapolated / ours['wall_seconds']:.1f}x "
          f"wall, {extrapolated_cpu / ours['cpu_seconds']:.1f}x CPU")
    print(f"speed-up at {straightforward_n:,} (both measured): "
          f"{plain['wall_seconds'] / ours_small['wall_seconds']:.1f}x wall, "
          f"{plain['cpu_seconds'] / ours_small['cpu_seconds']:.1f}x CPU")
    phases = ours.get("timings") or {}
    if phases:  # where the time goes (the median run): read, base tables, each SQL statement with its writing
        shown = ", ".join(f"{name} {seconds:.2f}" for name, seconds in phases.items())
        rest = ours["wall_seconds"] - sum(phases.values())
        print(f"\nwhere the time goes (median run, s): {shown}; start-up, last writes and the rest {rest:.2f}")
    same = _summary(work / "out-small")
    print(f"same answer on the small input: ours {same}, straightforward {plain['counts']}")
    print(f"work directory: {work}")


if __name__ == "__main__":
    main()

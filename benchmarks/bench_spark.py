"""Benchmark ``mia analyze --engine spark`` on N generated MailItemsAccessed records (informational).

    .venv/bin/python benchmarks/bench_spark.py [-n 1000000] [--shape realistic|uniform] [--master local[2]]
                                               [--embedded]

Generates N records as raw JSON lines (gen_records.py), runs ``mia analyze --engine spark`` on them in a fresh
process and reports its wall time (session start, reading on the executors, de-duplication, the analysis
SQL and writing every output), the driver's peak RSS, the JVM's peak RSS, and the load average before the
run (the machine is shared). ``--embedded`` also times the default engine on the same file, and the two
outputs are compared (summary.json and every table must be identical).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gen_records import SHAPES, write_jsonl  # noqa: E402

_CHILD = """
import json, sys, time
start = time.perf_counter()
from mia_bridge.cli.app import main
code = main(sys.argv[1:])
peak = 0
with open("/proc/self/status") as status:
    for line in status:
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
print(json.dumps({"code": code, "inner_seconds": time.perf_counter() - start, "peak_bytes": peak}))
"""


def _tree_rss(root: int) -> int:
    """RSS of ``root``'s descendants that are Java processes (the Spark driver JVM), in bytes."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent != root or "java" not in (entry / "comm").read_text():
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return total


def run(args: list[str]) -> dict[str, float]:
    os.sync()
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", _CHILD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    jvm_peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal jvm_peak
        while not done.wait(0.5):
            jvm_peak = max(jvm_peak, _tree_rss(child.pid))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = child.communicate()
    done.set()
    watcher.join()
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"mia analyze failed ({child.returncode}):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return {"wall_seconds": wall, "peak_bytes": result["peak_bytes"], "jvm_peak_bytes": jvm_peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="realistic")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--embedded", action="store_true", help="also time the embedded engine and compare")
    parser.add_argument("--input", type=Path, help="a JSON-lines file made earlier (gen_records.py) instead of -n")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    try:
        data = options.input or work / "records.jsonl"
        if options.input is None:
            made = time.perf_counter()
            write_jsonl(data, SHAPES[options.shape](options.n))
            print(f"generated {options.n:,} {options.shape} records ({data.stat().st_size / 1e9:.2f} GB) "
                  f"in {time.perf_counter() - made:.0f} s")
        load = os.getloadavg()
        spark = run(["analyze", str(data), "--out", str(work / "spark"), "--engine", "spark",
                     "--spark-master", options.master])
        print(f"spark ({options.master}): {spark['wall_seconds']:.1f} s wall, driver peak "
              f"{spark['peak_bytes'] / 2**30:.2f} GB, JVM peak {spark['jvm_peak_bytes'] / 2**30:.2f} GB "
              f"(load average before: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})")
        if options.embedded:
            embedded = run(["analyze", str(data), "--out", str(work / "embedded")])
            print(f"embedded: {embedded['wall_seconds']:.1f} s wall, peak {embedded['peak_bytes'] / 2**30:.2f} GB")
            same = json.loads((work / "spark" / "summary.json").read_text()) == json.loads(
                (work / "embedded" / "summary.json").read_text())
            print(f"summary.json identical: {same}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

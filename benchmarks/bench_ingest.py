"""Benchmark the streaming ingest (``analysis/ingest.py``): inputs → base tables on disk, time and peak memory.

    .venv/bin/python benchmarks/bench_ingest.py --workdir /tmp/ingest-bench [-n 1000000 5000000 10000000]
        [--shape both|uniform|realistic] [--csv-n 1000000] [--gz-n 1000000] [--twice-n 1000000] [--keep-inputs]

For each shape (gen_records.py) a base of ``--base-n`` records is generated once (kept in the work folder);
an input of N records is the base repeated with each copy's ``"Id":"`` values prefixed by the copy's number,
so every Id is unique (as in one tenant-wide export) while generation stays cheap. ``--csv-n`` and ``--gz-n``
time a Purview CSV and a gzip JSON-lines input of that many records; ``--twice-n`` gives one JSON-lines input
twice (every Id shared: the de-duplication's worst case).

Each run is a fresh process (wall time includes interpreter start). Peak memory is the sum of the peaks of
the main process and of each worker process (``VmHWM`` from /proc/<pid>/status of each: ru_maxrss would
survive execve), so it counts every process the ingest ran.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gen_records import SHAPES, write_jsonl, write_purview_csv  # noqa: E402

_CHILD = """
import json, os, sys, time
from pathlib import Path
start = time.perf_counter()
from mia_bridge.analysis.api import AnalysisOptions
from mia_bridge.analysis.ingest import ingest_files, _peak_rss
tables = ingest_files([Path(p) for p in sys.argv[2:]], AnalysisOptions(), Path(sys.argv[1]))
cpu = os.times()
print(json.dumps({"inner_seconds": time.perf_counter() - start, "main_peak": _peak_rss(),
                  "cpu_seconds": cpu.user + cpu.system + tables.worker_cpu_seconds,
                  "worker_peaks": tables.worker_peaks, "read": tables.read, "parsed": tables.parsed,
                  "quarantined": tables.quarantined, "conflicts": len(tables.conflicts)}))
"""


def _base(workdir: Path, shape: str, base_n: int) -> Path:
    path = workdir / f"{shape}-base-{base_n}.jsonl"
    if not path.exists():
        write_jsonl(path.with_suffix(".tmp"), SHAPES[shape](base_n))
        path.with_suffix(".tmp").rename(path)
    return path


def scaled(workdir: Path, shape: str, n: int, base_n: int) -> Path:
    """An input of ``n`` records: the base repeated, each copy's Ids made distinct."""
    base = _base(workdir, shape, base_n)
    if n == base_n:
        return base
    if n % base_n:
        raise SystemExit(f"-n {n} is not a multiple of --base-n {base_n}")
    path = workdir / f"{shape}-{n}.jsonl"
    if not path.exists():
        data = base.read_bytes()
        with path.open("wb") as out:
            out.write(data)
            for copy in range(1, n // base_n):
                out.write(data.replace(b'"Id":"', b'"Id":"%d-' % copy))
    return path


def run(workdir: Path, inputs: list[Path]) -> dict[str, float]:
    out = workdir / "tables"
    shutil.rmtree(out, ignore_errors=True)
    os.sync()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, str(out), *map(str, inputs)], capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"ingest failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = wall
    result["peak_total"] = result["main_peak"] + sum(result["worker_peaks"])
    result["input_bytes"] = sum(p.stat().st_size for p in inputs)
    shutil.rmtree(out, ignore_errors=True)
    return result


def _row(label: str, n: int, result: dict[str, float]) -> str:
    gb = 1 << 30
    mb_s = result["input_bytes"] / result["wall_seconds"] / 1e6
    peaks = " + ".join(f"{p / gb:.2f}" for p in result["worker_peaks"])  # type: ignore[attr-defined]
    return (f"| {label} | {n:,} | {result['input_bytes'] / 1e9:.2f} | {result['wall_seconds']:.1f} | "
            f"{result['cpu_seconds']:.1f} | {mb_s:.0f} | "
            f"{result['peak_total'] / gb:.2f} ({result['main_peak'] / gb:.2f} + {peaks or '-'}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("-n", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--base-n", type=int, default=1_000_000)
    parser.add_argument("--shape", choices=["both", *sorted(SHAPES)], default="both")
    parser.add_argument("--csv-n", type=int, default=0)
    parser.add_argument("--gz-n", type=int, default=0)
    parser.add_argument("--twice-n", type=int, default=0)
    parser.add_argument("--keep-inputs", action="store_true", help="keep the scaled inputs (they are large)")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    shapes = sorted(SHAPES) if args.shape == "both" else [args.shape]
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    print("| input | records | GB | wall s | CPU s | MB/s | peak GB (main + workers) |", flush=True)
    print("|---|---:|---:|---:|---:|---:|---|", flush=True)
    for shape in shapes:
        for n in args.n:
            path = scaled(args.workdir, shape, n, args.base_n)
            print(_row(f"{shape} JSON lines", n, run(args.workdir, [path])), flush=True)
            if path.name != f"{shape}-base-{args.base_n}.jsonl" and not args.keep_inputs:
                path.unlink()
        if args.gz_n:
            path = scaled(args.workdir, shape, args.gz_n, args.base_n)
            gz = args.workdir / f"{shape}-{args.gz_n}.jsonl.gz"
            if not gz.exists():
                with path.open("rb") as src, gzip.open(gz, "wb", compresslevel=1) as dst:
                    shutil.copyfileobj(src, dst, 16 << 20)
            print(_row(f"{shape} JSON lines .gz", args.gz_n, run(args.workdir, [gz])), flush=True)
        if args.csv_n:
            csv_path = args.workdir / f"{shape}-{args.csv_n}.csv"
            if not csv_path.exists():
                write_purview_csv(csv_path, SHAPES[shape](args.csv_n))
            print(_row(f"{shape} Purview CSV", args.csv_n, run(args.workdir, [csv_path])), flush=True)
        if args.twice_n:
            path = scaled(args.workdir, shape, args.twice_n, args.base_n)
            print(_row(f"{shape} JSON lines given twice", 2 * args.twice_n, run(args.workdir, [path, path])),
                  flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()

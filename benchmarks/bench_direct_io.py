"""A/B of how the analysis tables reach the disk: ``O_DIRECT`` (the default on Linux) against the page cache
(``MIA_DIRECT_IO=0``), on the same input.

    .venv/bin/python benchmarks/bench_direct_io.py [-n 1000000] [--shape realistic] [--pairs 3] [--workdir DIR]

Generates N records (gen_records.py, or reuses the file of that shape and size in --workdir), then runs
``mia analyze`` on it in pairs, the two settings alternated (a drift of the machine hits both alike), each run
in a fresh process after the previous outputs are removed and dirty pages flushed (``os.sync``). Reports
wall time and the CPU of the whole process tree (user and system, ``getrusage`` of the children, the parse
workers included) and checks that both settings write the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gen_records import SHAPES, write_jsonl  # noqa: E402

SETTINGS = {"direct": "1", "page cache": "0"}


def _digests(folder: Path) -> dict[str, str]:
    """Every output file's SHA-256 (read in 8 MB pieces)."""
    result = {}
    for path in sorted(folder.iterdir()):
        if path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                while block := handle.read(8 << 20):
                    digest.update(block)
            result[path.name] = digest.hexdigest()
    return result


def _run(source: Path, out: Path, setting: str) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    os.sync()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mia_bridge.cli.app", "analyze", str(source), "--out", str(out)],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "MIA_DIRECT_IO": SETTINGS[setting]})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"mia analyze failed ({setting}):\n{proc.stderr[-3000:]}")
    return {"wall": wall, "user": after.ru_utime - before.ru_utime, "sys": after.ru_stime - before.ru_stime}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="realistic")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mia-bench-dio-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"{args.shape}-records-{args.n}.jsonl"
    if not source.exists():
        started = time.perf_counter()
        write_jsonl(source, SHAPES[args.shape](args.n))
        print(f"generated {args.n:,} {args.shape} records ({source.stat().st_size / 1e9:.2f} GB) "
              f"in {time.perf_counter() - started:.0f} s")
    print(f"machine: {os.cpu_count()} cores; load before: {', '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print("| pair | setting | wall s | user s | sys s |\n|---:|---|---:|---:|---:|")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
    digests: dict[str, dict[str, str]] = {}
    for pair in range(1, args.pairs + 1):
        order = list(SETTINGS) if pair % 2 else list(reversed(SETTINGS))  # who goes first alternates too
        for setting in order:
            out = work / f"out-{setting.replace(' ', '-')}"
            res = _run(source, out, setting)
            results[setting].append(res)
            print(f"| {pair} | {setting} | {res['wall']:.1f} | {res['user']:.1f} | {res['sys']:.1f} |", flush=True)
            digests.setdefault(setting, _digests(out))
    print()
    for setting, runs in results.items():
        print(f"{setting}: median wall {statistics.median(r['wall'] for r in runs):.1f} s, "
              f"median sys {statistics.median(r['sys'] for r in runs):.1f} s, "
              f"median user {statistics.median(r['user'] for r in runs):.1f} s")
    walls = {s: statistics.median(r["wall"] for r in runs) for s, runs in results.items()}
    print(f"ratio page cache / direct (median wall): {walls['page cache'] / walls['direct']:.2f}")
    a, b = digests["direct"], digests["page cache"]
    differ = sorted(name for name in a.keys() | b.keys() if a.get(name) != b.get(name))
    print("outputs: " + ("every file the same, byte for byte" if not differ else f"DIFFER: {', '.join(differ)}"))


if __name__ == "__main__":
    main()

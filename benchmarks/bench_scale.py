"""Benchmark ``mia analyze`` at millions of generated records: is peak memory flat and time linear?

    .venv/bin/python benchmarks/bench_scale.py [--sizes 5000000 10000000] [--shape both|uniform|realistic]
                                               [--jobs 2] [--workdir DIR] [--reuse] [--keep-outputs]
                                               [--generate-only] [--drop-inputs]

Issue 14's done-when: 5,000,000 and 10,000,000 records of either shape in at most 3 GB, time linear. For
each shape the largest size is generated (``gen_records.write_parts``: ``--jobs`` processes, parts seeded
apart with message ids numbered apart, so sessions, contexts and unique message ids grow with N as a real
tenant's do); each smaller size is the first N lines of that file, copied before its run and removed after.
Each run is a fresh ``mia analyze FILE --out DIR``; the summed RSS of its whole process tree (main process,
forkserver, ingest workers) is sampled every 0.2 s, CPU time is the tree's (children waited for). The
outputs of each run are removed after it (``--keep-outputs`` keeps them), and dirty pages are flushed before
the next.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gen_records import SHAPES, write_parts  # noqa: E402

# `mia` as its console script runs it, plus where the time went (api.TIMINGS) written to the file in argv[1]
_CHILD = """
import json, sys
from mia_bridge.cli.app import main
code = main(sys.argv[2:])
from mia_bridge.analysis import api
with open(sys.argv[1], "w", encoding="utf-8") as handle:
    json.dump(api.TIMINGS, handle)
raise SystemExit(code)
"""


def tree_rss(root: int) -> int:
    """Summed VmRSS (bytes) of ``root`` and every descendant."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
        stack.extend(children.get(pid, []))
    return total


def drop_page_cache() -> None:
    """Empty the page cache (root only), so that every run starts with its input on disk, as a user's evidence
    is: without it the smaller input, cut from the larger just before its run, was read from memory and the
    larger from disk, and the ratio between them measured the cache."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as handle:
            handle.write("3\n")
    except OSError as exc:
        raise SystemExit(f"--cold: cannot drop the page cache ({exc.strerror}); it needs root on Linux") from None


def run_measured(command: list[str], cold: bool = False) -> dict[str, float]:
    """Wall time, the process tree's CPU seconds and peak summed RSS of ``command`` (after emptying the page
    cache when ``cold``)."""
    os.sync()
    if cold:
        drop_page_cache()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.2)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {proc.returncode}")
    return {"wall": wall, "peak": peak, "user": after.ru_utime - before.ru_utime,
            "sys": after.ru_stime - before.ru_stime}


def head_lines(source: Path, target: Path, lines: int) -> None:
    """The first ``lines`` lines of ``source`` into ``target``, copied in large blocks."""
    left = lines
    with source.open("rb") as src, target.open("wb") as out:
        while left and (block := src.read(1 << 24)):
            count = block.count(b"\n")
            if count >= left:
                cut = 0
                for _ in range(left):
                    cut = block.index(b"\n", cut) + 1
                out.write(block[:cut])
                return
            out.write(block)
            left -= count


def _counts(out: Path) -> dict[str, int]:
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    flat: dict[str, int] = {}

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        elif isinstance(node, int) and not isinstance(node, bool):
            flat[prefix[:-1]] = node

    walk(data, "")
    return flat


def _pick(counts: dict[str, int], *names: str) -> int | None:
    for name in names:
        for key, value in counts.items():
            if key.endswith(name):
                return value
    return None


def bench_shape(shape: str, sizes: list[int], args: argparse.Namespace, work: Path) -> None:
    largest = max(sizes)
    files = {n: work / f"{shape}-{n}.jsonl" for n in sizes}
    started = time.perf_counter()
    if not (args.reuse and files[largest].exists()):
        write_parts(files[largest], shape, largest, args.jobs)
    print(f"\n## shape: {shape}\n\ngenerated {largest:,} records ({files[largest].stat().st_size / 1e9:.1f} GB) in "
          f"{time.perf_counter() - started:.0f} s with {args.jobs} processes; smaller sizes are its first lines\n")
    if args.generate_only:
        return
    print("| records | input GB | wall s | CPU s (user + sys) | tree peak GiB | read = parsed + quarantined "
          "| events | item rows | contexts | unique message ids | outputs GB |")
    print("|---:|---:|---:|---|---:|---|---:|---:|---:|---:|---:|")
    results = []
    for n in sorted(sizes):
        out = work / f"out-{shape}-{n}"
        if n != largest:  # made for its run and removed after it: disk holds one prefix at a time
            head_lines(files[largest], files[n], n)
        shutil.rmtree(out, ignore_errors=True)
        load = os.getloadavg()
        phases = work / f"phases-{shape}-{n}.json"
        res = run_measured([sys.executable, "-c", _CHILD, str(phases), "analyze", str(files[n]), "--out", str(out)],
                           cold=args.cold)
        counts = _counts(out)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        read, parsed, quarantined = (_pick(counts, "records_read"), _pick(counts, "records_parsed"),
                                     _pick(counts, "records_quarantined", "quarantined"))
        print(f"| {n:,} | {files[n].stat().st_size / 1e9:.1f} | {res['wall']:.1f} | {res['user'] + res['sys']:.0f} "
              f"({res['user']:.0f} + {res['sys']:.0f}) | {res['peak'] / 2**30:.2f} | {read} = {parsed} + "
              f"{quarantined} | {_pick(counts, 'mail_items_accessed.events')} | "
              f"{_pick(counts, 'mail_items_accessed.items_accessed')} | {_pick(counts, 'contexts')} | "
              f"{_pick(counts, 'unique_internet_message_ids')} | {size / 1e9:.1f} |", flush=True)
        print(f"<!-- load average before the {n:,} run: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} -->", flush=True)
        timings = json.loads(phases.read_text(encoding="utf-8"))
        phases.unlink()
        print(f"<!-- where the time goes at {n:,} (s): "
              + ", ".join(f"{name} {seconds:.1f}" for name, seconds in timings.items()) + " -->", flush=True)
        results.append((n, res))
        if n != largest:
            files[n].unlink()
        if not args.keep_outputs:
            shutil.rmtree(out, ignore_errors=True)
    if args.drop_inputs:
        files[largest].unlink()
    (n0, r0), (n1, r1) = results[0], results[-1]
    if n1 != n0:
        print(f"\ntime ratio {n1:,}/{n0:,}: {r1['wall'] / r0['wall']:.2f} (linear: {n1 / n0:.2f}); "
              f"peak ratio {r1['peak'] / r0['peak']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description="mia analyze at millions of records (peak memory, linear time)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000_000, 10_000_000])
    parser.add_argument("--shape", choices=["both", *sorted(SHAPES)], default="both")
    parser.add_argument("--jobs", type=int, default=2, help="processes generating the largest input")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="keep inputs already generated in --workdir")
    parser.add_argument("--keep-outputs", action="store_true")
    parser.add_argument("--generate-only", action="store_true", help="write the inputs (for a later --reuse run)")
    parser.add_argument("--drop-inputs", action="store_true", help="remove a shape's input after its runs (disk)")
    parser.add_argument("--cold", action="store_true", help="empty the page cache before each run (root, Linux)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mia-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores; work directory {work}; page cache emptied before each run: "
          f"{'yes' if args.cold else 'no'}")
    for shape in (sorted(SHAPES, reverse=True) if args.shape == "both" else [args.shape]):
        bench_shape(shape, args.sizes, args, work)


if __name__ == "__main__":
    main()

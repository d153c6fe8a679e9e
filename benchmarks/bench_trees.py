"""A/B of two source trees on the same input: ``mia analyze``'s work, alternated, each tree importing its own code.

    .venv/bin/python benchmarks/bench_trees.py INPUT --tree A=/path/to/checkout --tree B=. [--pairs 2] [--workdir DIR]

Make the other tree with ``git worktree add /tmp/base <commit>``. Each run is a fresh process started from the
work directory (never from a checkout, whose own package the interpreter would import first) with
``PYTHONPATH`` set to its tree; it runs ``api.analyze_files`` with an ``OutputWriter``, as ``mia analyze`` does,
and prints its wall time, CPU (the parse workers included once they are reaped), its own peak RSS (VmHWM: the
parse workers' is not in it) and ``api.TIMINGS``. The runs
alternate between the trees (a drift of the machine hits both alike), and after each pair every output file of
the two trees is compared byte for byte (Parquet: table content).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

# One run, in a fresh process: argv = input, output folder.
_CHILD = """
import json, resource, shutil, sys, time
from pathlib import Path

def main():
    from mia_bridge.analysis import api
    from mia_bridge.analysis.outputs import OutputWriter
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    with OutputWriter(out) as writer:
        writer.finish(api.analyze_files([src], api.AnalysisOptions(), writer))
    wall = time.perf_counter() - started
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    # this process's own high-water mark (ru_maxrss would carry the launching process's across exec)
    status = Path("/proc/self/status").read_text()
    peak_kib = int(status.split("VmHWM:")[1].split()[0])
    print(json.dumps({"wall": wall, "cpu": own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime,
                      "peak_gib": peak_kib / 2**20, "timings": api.TIMINGS}))

if __name__ == "__main__":
    main()
"""


def _run(tree: Path, source: Path, out: Path, work: Path) -> dict[str, object]:
    script = work / "bench_trees_child.py"
    script.write_text(_CHILD, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script), str(source), str(out)], cwd=work, capture_output=True,
                          text=True, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"run in {tree} failed:\n{proc.stderr[-2000:]}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _same_outputs(a: Path, b: Path) -> list[str]:
    """The output files whose content differs between the two folders (Parquet compared as tables)."""
    import pyarrow.parquet as pq

    differ = []
    for path in sorted(a.iterdir()):
        other = b / path.name
        if not other.exists():
            differ.append(path.name)
        elif path.suffix == ".parquet":  # a row group at a time: this process's peak stays small
            with pq.ParquetFile(path) as left, pq.ParquetFile(other) as right:
                same = left.schema_arrow.equals(right.schema_arrow) and all(
                    x.equals(y) for x, y in zip(left.iter_batches(65_536), right.iter_batches(65_536), strict=False)
                ) and left.metadata.num_rows == right.metadata.num_rows
            if not same:
                differ.append(path.name)
        elif path.read_bytes() != other.read_bytes():
            differ.append(path.name)
    return differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH, twice")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    trees = [(name, Path(path).resolve()) for name, _, path in (t.partition("=") for t in args.tree)]
    if len(trees) != 2:
        raise SystemExit("give --tree twice: NAME=PATH")
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="mia-bench-trees-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    source = args.input.resolve()
    print(f"input {source} ({source.stat().st_size / 1e9:.2f} GB); work directory {work}\n")
    print("| pair | tree | wall s | CPU s | peak GiB | read s |\n|---:|---|---:|---:|---:|---:|")
    for pair in range(1, args.pairs + 1):
        for name, tree in trees:
            res = _run(tree, source, work / f"out-{name}", work)
            timings = res["timings"]
            read = timings.get("read", 0.0) if isinstance(timings, dict) else 0.0
            print(f"| {pair} | {name} | {res['wall']:.2f} | {res['cpu']:.1f} | {res['peak_gib']:.2f} | {read:.2f} |",
                  flush=True)
        differ = _same_outputs(work / f"out-{trees[0][0]}", work / f"out-{trees[1][0]}")
        print(f"<!-- pair {pair}: outputs {'identical' if not differ else 'DIFFER: ' + ', '.join(differ)} -->",
              flush=True)


if __name__ == "__main__":
    main()

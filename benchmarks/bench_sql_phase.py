"""Time the embedded engine's SQL and writing phase alone, on base tables ingested once.

    .venv/bin/python benchmarks/bench_sql_phase.py INPUT CACHE_DIR OUT_DIR

The first run ingests INPUT into CACHE_DIR/base (kept, with CACHE_DIR/base.pkl); every run then analyses
those base tables with an ``OutputWriter`` into OUT_DIR (removed first) and prints the seconds per statement
(``api.TIMINGS``), wall, CPU and peak RSS, and the load average (CPU seconds compare across a busy machine).
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import shutil
import sys
import time
from pathlib import Path

from mia_bridge.analysis.api import TIMINGS, AnalysisOptions, analyse_base
from mia_bridge.analysis.ingest import ingest_files
from mia_bridge.analysis.outputs import OutputWriter


def main(source: Path, cache: Path, out: Path) -> None:
    options = AnalysisOptions()
    if not (cache / "base.pkl").exists():
        base = ingest_files([source], options, cache / "base")
        (cache / "base.pkl").write_bytes(pickle.dumps(base))
    base = pickle.loads((cache / "base.pkl").read_bytes())  # our own file, written just above
    shutil.rmtree(out, ignore_errors=True)
    work = cache / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    os.sync()
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    with OutputWriter(out) as writer:
        writer.finish(analyse_base(base, options, list(base.inputs), work, writer))
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({name: round(seconds, 2) for name, seconds in TIMINGS.items()}))
    print(f"wall {wall:.2f} s, CPU {after.ru_utime - before.ru_utime:.1f} user + "
          f"{after.ru_stime - before.ru_stime:.1f} sys, peak {after.ru_maxrss / 1e6:.2f} GB, "
          f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main(*(Path(arg) for arg in sys.argv[1:4]))

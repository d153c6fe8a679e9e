"""Sparrow's MailItems_Operations_Export.csv for N MailItemsAccessed records: time and output size.

The writer models PowerShell 5.1 (ConvertTo-Json at depth 2, JavaScriptSerializer escapes, Export-Csv,
ASCII) in Python; this measures what that costs on the records ``gen_records`` makes (binds with several
folders and items, syncs, throttled records). Run: ``.venv/bin/python benchmarks/bench_sparrow.py [N ...]``.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_records import generate

from mia_bridge.exports.sparrow import EXO_COLUMNS, ual_file


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 100_000]
    for n in sizes:
        records = list(generate(n))
        item = ual_file("MailItems_Operations_Export.csv", [records], EXO_COLUMNS, ",")
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / item.rel
            started = time.perf_counter()
            item.write(target)
            seconds = time.perf_counter() - started
            size = target.stat().st_size
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{n:>9,} records: {seconds:6.2f} s ({n / seconds:,.0f} records/s), {size / 1e6:,.1f} MB written, "
              f"peak RSS {peak:,.0f} MiB (records in memory included)")


if __name__ == "__main__":
    main()

"""Peak memory of ``mia investigate``'s steps after the collection, over N collected MailItemsAccessed records.

    .venv/bin/python benchmarks/bench_investigate_memory.py EVIDENCE.jsonl [-n 200000 1000000] [--held]

The records are the first N lines of EVIDENCE (JSON lines as the collector writes them, e.g. gen_records.py's
output), copied into a fresh case as the MailItemsAccessed search's evidence file. Each size runs in a fresh
process: the shared steps (findings and attribution, the analysis, exposed messages, Sparrow's files, the
timeline, the report, the record) over that search, as ``run_investigation`` runs them after collecting, with
no tenant (the affected-parties step is skipped). ``streamed``: the search's records read from the evidence
file on each pass, as the pipeline does; ``--held`` adds the same run with the records read whole into a list
of dicts first (what the pipeline did before), for comparison.

Wall time, CPU time and peak RSS (VmHWM) are printed with the load average (2 cores are shared).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import json, resource, sys, time
from datetime import UTC, datetime
from pathlib import Path

mode, evidence, case = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
from mia_bridge.analysis.api import analyze_files
from mia_bridge.collect.engine import QueryCounts, QueryResult
from mia_bridge.evidence.store import read_records
from mia_bridge.investigate import pipeline
from mia_bridge.investigate.plan import mailbox_searches
from mia_bridge.investigate.record_views import EvidenceRecords
from mia_bridge.investigate.searches import SearchRun, all_records, mail_items_files


class UI:
    progress = None
    def confirm(self, question): return True
    def outcome(self, outcome): pass
    def note(self, text): pass


start = time.perf_counter()
options = pipeline.InvestigateOptions(tenant="contoso.com", out_dir=case, start=datetime(2000, 1, 1, tzinfo=UTC),
                                      end=datetime(2100, 1, 1, tzinfo=UTC))
ctx = pipeline.begin_case(options, UI())
spec = mailbox_searches(())[0]
result = QueryResult(spec.to_audit_query(options.start, options.end), evidence, QueryCounts(), 0, 0, [], [], False)
records = read_records(evidence) if mode == "held" else EvidenceRecords(evidence)
ctx.runs = ctx.result.searches = [SearchRun(spec, result=result, records=records)]
ctx.records = all_records(ctx.runs)
ctx.domains = {"contoso.com"}
ctx.analyse = lambda analysis_options, writer=None: analyze_files(mail_items_files(ctx.runs), analysis_options, writer)
done = pipeline.complete_investigation(ctx)
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
status = Path("/proc/self/status").read_text()
peak = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024
print(json.dumps({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_bytes": peak,
                  "broken": done.broken, "steps": [[o.name, o.status.value] for o in done.steps]}))
"""


def _case(source: Path, n: int, work: Path) -> Path:
    evidence = work / f"evidence-{n}.jsonl"
    if not evidence.exists():
        with source.open("rb") as src, evidence.open("wb") as dst:
            dst.writelines(itertools.islice(src, n))
    return evidence


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evidence", type=Path)
    parser.add_argument("-n", type=int, nargs="+", default=[200_000])
    parser.add_argument("--held", action="store_true", help="also run with the records held in a list (before)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mia-bench-invmem-"))
    work.mkdir(parents=True, exist_ok=True)
    print("| records | mode | wall s | CPU s | peak RSS MiB | load (1 min) before / after |\n|---|---|---|---|---|---|")
    for n in args.n:
        evidence = _case(args.evidence, n, work)
        for mode in ("streamed", "held") if args.held else ("streamed",):
            before = os.getloadavg()[0]
            case = Path(tempfile.mkdtemp(prefix=f"case-{mode}-{n}-", dir=work))
            proc = subprocess.run([sys.executable, "-c", _CHILD, mode, str(evidence), str(case / "case")],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise SystemExit(f"{mode} {n} failed:\n{proc.stderr[-3000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            if res["broken"]:
                raise SystemExit(f"{mode} {n}: steps failed: {res['broken']} {res['steps']}")
            print(f"| {n:,} | {mode} | {res['seconds']:.1f} | {res['cpu_seconds']:.1f} | "
                  f"{res['peak_bytes'] / 2**20:,.0f} | {before:.2f} / {os.getloadavg()[0]:.2f} |", flush=True)
    print(f"work directory: {work}")


if __name__ == "__main__":
    main()

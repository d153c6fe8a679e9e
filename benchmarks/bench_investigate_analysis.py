"""Benchmark the analysis step of ``mia investigate`` against ``mia analyze`` on the same N evidence records.

    .venv/bin/python benchmarks/bench_investigate_analysis.py [-n 1000000] [--shape realistic|uniform|both]
                                                              [--repeat 3] [--before-n 100000]

Issue 11's done-when: on a 1,000,000-record case the investigation's MailItemsAccessed analysis spends no more
than ``mia analyze`` on the same records. The records (gen_records.py, deterministic) are written as a case's
evidence file, ``CASE/evidence/mia-mailitemsaccessed.jsonl``, compact JSON lines as the collector writes them.

Each run is a fresh process; the clock starts once the modules are imported and stops when every output is
written:

- ``investigate step``: ``pipeline._analyse`` (the step: analysis, outputs under CASE/analysis, the step's and
  each mailbox's outcome) with the ``analyse`` callable ``run_investigation`` builds: ``analyze_files`` over
  ``searches.mail_items_files(runs)``. The search's ``records`` hold the file's first 1,000 records (the step
  only asks whether the file holds MailItemsAccessed records; in a real run the earlier steps hold them all,
  outside this step). The investigated mailbox (``--user``) is the first record's, so its story has figures.
- ``mia analyze``: ``main(["analyze", FILE, "--out", DIR])``, the same file.
- ``before``: what the step did before issue 11 (the records as dicts → ``analyze_records`` →
  ``write_outputs``), on the first ``--before-n`` records only (a million dicts need ≈10 GB), extrapolated
  linearly and marked so; the dicts are read before the clock starts.

Wall time, CPU time and the child's peak RSS (VmHWM) are reported, with the load average (2 cores are shared).
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
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gen_records import SHAPES, write_jsonl  # noqa: E402

EVIDENCE = "evidence/mia-mailitemsaccessed.jsonl"

_CHILD = """
import json, resource, sys, time
from pathlib import Path
from typing import Any

kind, case, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
evidence = case / "evidence" / "mia-mailitemsaccessed.jsonl"
if kind == "analyze":
    from mia_bridge.cli.app import main

    start = time.perf_counter()
    code = main(["analyze", str(evidence), "--out", str(out)])
else:
    import itertools
    from datetime import UTC, datetime
    from mia_bridge.analysis.api import AnalysisOptions, analyze_files, analyze_records, write_outputs
    from mia_bridge.collect.engine import QueryCounts, QueryResult
    from mia_bridge.investigate import pipeline
    from mia_bridge.investigate.attribution import AttackerContext
    from mia_bridge.investigate.findings import FindingSet
    from mia_bridge.investigate.plan import mailbox_searches
    from mia_bridge.investigate.searches import SearchRun, mail_items_files
    from mia_bridge.investigate.steps import StepLog

    spec = mailbox_searches(())[0]
    limit = int(sys.argv[4]) if kind == "before" else 1000
    with evidence.open(encoding="utf-8") as handle:
        records = [json.loads(line) for line in itertools.islice(handle, limit)]
    run = SearchRun(spec, result=QueryResult(spec.to_audit_query(datetime(2020, 1, 1, tzinfo=UTC),
                                                                 datetime(2030, 1, 1, tzinfo=UTC)),
                                             evidence, QueryCounts(), 0, 0, [], [], False),
                    records=records)
    if kind == "step":
        def analyse(options, writer=None):  # as run_investigation's closure
            return analyze_files(mail_items_files([run]), options, writer)
        options = pipeline.InvestigateOptions(tenant="contoso.com", out_dir=case, start=None,
                                              end=datetime(2030, 1, 1, tzinfo=UTC),
                                              users=(str(records[0]["MailboxOwnerUPN"]).lower(),))
        findings = FindingSet(findings=[], context=AttackerContext(), exposed=[], synced_folders={}, throttled={})
        steps = StepLog()
        result = pipeline.InvestigationResult(case_dir=case, steps=steps)
        start = time.perf_counter()
        summary = pipeline._analyse(case, analyse, options, findings, steps, result)
        code = 0 if summary else 1
    else:
        start = time.perf_counter()
        write_outputs(analyze_records(records, AnalysisOptions(), source="collected MailItemsAccessed records"),
                      out)
        code = 0
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
status = Path("/proc/self/status").read_text()
peak = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024
from mia_bridge.analysis.api import TIMINGS

print(json.dumps({"code": code, "seconds": seconds, "peak_bytes": peak,
                  "cpu_seconds": usage.ru_utime + usage.ru_stime, "phases": TIMINGS}))
"""


def _run(kind: str, case: Path, out: Path, before_n: int = 0) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    os.sync()  # no run pays for the previous one's write-back
    proc = subprocess.run([sys.executable, "-c", _CHILD, kind, str(case), str(out), str(before_n)],
                          capture_output=True, text=True, check=False, env={**os.environ, "PYTHONHASHSEED": "0"})
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["code"] != 0:
        raise SystemExit(f"{kind} exited {result['code']}:\n{proc.stderr[-3000:]}")
    return result


def _tables(out: Path) -> dict[str, object]:
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return data["mail_items_accessed"]  # type: ignore[no-any-return]


def bench_shape(shape: str, args: argparse.Namespace, work: Path) -> None:
    case = work / f"case-{shape}-{args.n}"
    evidence = case / EVIDENCE
    if not (args.reuse and evidence.exists()):
        evidence.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        write_jsonl(evidence, SHAPES[shape](args.n))
        print(f"generated {args.n:,} {shape} records ({evidence.stat().st_size / 1e9:.2f} GB) in "
              f"{time.perf_counter() - started:.0f} s")
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {"step": [], "analyze": []}
    for number in range(1, max(args.repeat, 1) + 1):  # alternated, so a change of load hits both alike
        for kind, out in (("step", case / "analysis"), ("analyze", work / f"out-analyze-{shape}")):
            runs[kind].append(_run(kind, case, out))
            res = runs[kind][-1]
            phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in res["phases"].items())
            print(f"  {kind} run {number}: {res['seconds']:.1f} s wall, {res['cpu_seconds']:.1f} CPU s, peak "
                  f"{res['peak_bytes'] / 2**20:,.0f} MiB (load {os.getloadavg()[0]:.2f}); phases: {phases}",
                  flush=True)
    before = _run("before", case, work / f"out-before-{shape}", args.before_n) if args.before_n else None
    load_after = os.getloadavg()
    same = _tables(case / "analysis") == _tables(work / f"out-analyze-{shape}")

    def median(results: list[dict[str, Any]]) -> dict[str, Any]:
        return sorted(results, key=lambda r: r["seconds"])[len(results) // 2]

    def row(label: str, n: int, res: dict[str, Any], note: str = "") -> str:
        return (f"| {label} | {n:,} | {res['seconds']:.1f} | {res['cpu_seconds']:.1f} | "
                f"{res['peak_bytes'] / 2**20:,.0f} | {note} |")

    print(f"\n### shape {shape}: load average (1, 5, 15 min) before {', '.join(f'{v:.2f}' for v in load_before)}; "
          f"after {', '.join(f'{v:.2f}' for v in load_after)} ({os.cpu_count()} cores)\n")
    print("| run | records | wall s | CPU s (process) | peak RSS MiB | note |\n|---|---|---|---|---|---|")
    for kind, label in (("step", "mia investigate: analysis step"), ("analyze", "mia analyze")):
        for number, res in enumerate(runs[kind], start=1):
            note = "median" if res is median(runs[kind]) else ""
            print(row(f"{label}, run {number}", args.n, res, note))
    if before is not None:
        scale = args.n / args.before_n
        print(row("analysis step before issue 11 (dicts → analyze_records)", args.before_n, before,
                  f"≈{before['seconds'] * scale:,.0f} s at {args.n:,} (extrapolated linearly)"))
    step, analyze = median(runs["step"]), median(runs["analyze"])
    print(f"\nmedian: step {step['seconds']:.1f} s vs mia analyze {analyze['seconds']:.1f} s "
          f"(ratio {step['seconds'] / analyze['seconds']:.2f}); same MailItemsAccessed summary: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--shape", choices=["both", *sorted(SHAPES)], default="realistic")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before-n", type=int, default=100_000, help="0: skip the before-issue-11 run")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="keep evidence already generated in --workdir")
    args = parser.parse_args()
    args.before_n = min(args.before_n, args.n)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mia-bench-inv-"))
    work.mkdir(parents=True, exist_ok=True)
    for shape in (sorted(SHAPES, reverse=True) if args.shape == "both" else [args.shape]):
        bench_shape(shape, args, work)
    print(f"work directory: {work}")


if __name__ == "__main__":
    main()

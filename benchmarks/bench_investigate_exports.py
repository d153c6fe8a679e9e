"""Benchmark ``mia investigate --from-exports`` on the simulated compromised tenant's N records, exported as
raw JSON lines, and time its phases.

    .venv/bin/python benchmarks/bench_investigate_exports.py [-n 100000] [--repeat 1]

Builds the scenario (seed 7, bursty), dumps every record as AuditData JSON lines, then runs the whole
command in a fresh process (wall time includes interpreter start and every output: Sparrow files, analysis
tables, timeline, report) and reports wall time and peak RSS. It then times the offline source's own phases
in this process: preserving (copy + SHA-256), reading, and Sparrow's searches over the records.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

_CHILD = """
import json, resource, sys, time
start = time.perf_counter()
from mia_bridge.cli.app import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "seconds": time.perf_counter() - start,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), file=sys.stderr)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    from mia_bridge.investigate.offline import preserve_exports, read_exports, run_offline_searches
    from mia_bridge.investigate.offline_infer import default_period
    from mia_bridge.investigate.offline_run import candidate_searches
    from mia_bridge.investigate.pipeline import InvestigateOptions
    from mia_bridge.investigate.plan import SAML_SEARCH, SPARROW_TENANT_SEARCHES, mailbox_searches
    from mia_bridge.investigate.searches import SearchRun
    from mia_bridge.sim.scenario import build_tenant
    from mia_bridge.sim.tenant import TenantConfig

    with tempfile.TemporaryDirectory(prefix="bench-offline-") as tmp:
        folder = Path(tmp)
        dump = folder / "ual.jsonl"
        tenant = build_tenant(TenantConfig(seed=7), scenario="compromised", records=args.n)
        tenant.dump_truth(dump)
        del tenant
        size = dump.stat().st_size
        for attempt in range(args.repeat):
            case = folder / f"case{attempt}"
            proc = subprocess.run([sys.executable, "-c", _CHILD, "investigate", "--from-exports", str(dump),
                                   "--out", str(case), "--json"], capture_output=True, text=True, check=False)
            stats = json.loads(proc.stderr.strip().splitlines()[-1])
            summary = json.loads(proc.stdout)
            print(f"n={args.n} ({size / 1e6:.0f} MB) run {attempt + 1}: {stats['seconds']:.1f} s, peak "
                  f"{stats['peak_mib']:.0f} MiB, exit {stats['code']}, verdict {summary['verdict']['level']}, "
                  f"{len(summary['exposed_message_ids'])} exposed ids")
        case = folder / "phases"
        case.mkdir()
        t0 = time.perf_counter()
        files = preserve_exports(case, [dump])
        t1 = time.perf_counter()
        options = InvestigateOptions(tenant="x", out_dir=case, start=None, end=datetime.now(tz=UTC))
        exports = read_exports(files, candidate_searches(options))  # as the command reads them
        t2 = time.perf_counter()
        runs = [SearchRun(s) for s in (*SPARROW_TENANT_SEARCHES, SAML_SEARCH, *mailbox_searches(()))]
        period = default_period(exports)
        assert period is not None
        run_offline_searches(runs, exports, start=period[0], end=period[1], evidence_dir=case)
        t3 = time.perf_counter()
        matched = sum(len(r.records) for r in runs)
        print(f"phases: preserve {t1 - t0:.1f} s, read {t2 - t1:.1f} s ({exports.read / (t2 - t1):,.0f} records/s, "
              f"{len(exports.records)} of {exports.unique} kept for the searches), {len(runs)} searches "
              f"{t3 - t2:.1f} s ({matched} records matched)")


if __name__ == "__main__":
    main()

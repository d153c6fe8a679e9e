"""Benchmark: message-trace enrichment, many ids per query against one id per query (the straightforward
approach: PwC's MIA script traced ids one at a time), in the same run.

    .venv/bin/python benchmarks/bench_enrich.py                      # 6,000 audit records, every bind in scope
    .venv/bin/python benchmarks/bench_enrich.py --records 3000 --batch 50

Both runs go through pypsrp and the PSRP server on 127.0.0.1 against the same simulated tenant (its
mail dated 40 days back, inside message trace's 90 days). Time is measured twice: the wall time of the
run, and the time message trace's rate limit (100 queries per 5 minutes) would add, counted on a virtual
clock so the benchmark does not wait for real (the limiter sleeps on that clock). Results must agree.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mia_bridge.analysis.api import AnalysisOptions, analyze_records, write_outputs
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.enrich.api import EnrichOptions, enrich_case
from mia_bridge.enrich.message_trace import TraceSettings
from mia_bridge.sim.backend import sim_session
from mia_bridge.sim.mailflow import mailflow_of
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import Tenant, TenantConfig


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _case(tenant: Tenant, folder: Path) -> Path:
    records = [r for r in tenant.audit_records() if r["Operation"] == "MailItemsAccessed"]
    write_outputs(analyze_records(records, AnalysisOptions(), source="bench"), folder / "analysis")
    return folder  # no findings.json: every bind is in scope (many ids)


def _run(tenant: Tenant, case: Path, batch: int, now: datetime) -> dict[str, Any]:
    clock = VirtualClock()
    mailflow_of(tenant).use_clock(clock)
    options = EnrichOptions(now=now, clock=clock, sleep=clock.sleep, potential=False,
                            trace=TraceSettings(batch_size=batch))
    started = time.perf_counter()
    with sim_session(ConnectionSettings(transport="http", auth="basic"), tenant=tenant) as session:
        result = enrich_case(session.backend, case, options)
    wall = time.perf_counter() - started
    found = {m.key: (m.meta.sender, m.meta.recipients) for m in result.accessed if m.meta}
    return {
        "ids_per_query": batch,
        "ids": len(result.accessed),
        "with_metadata": len(found),
        "queries": len(result.query_log),
        "wall_s": round(wall, 1),
        "rate_limit_wait_s": round(clock.now, 0),
        "_found": found,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=TraceSettings().batch_size)
    args = parser.parse_args(argv)
    now = datetime.now(tz=UTC).replace(microsecond=0)
    tenant = build_tenant(TenantConfig(seed=1), records=args.records, start=now - timedelta(days=40))
    with tempfile.TemporaryDirectory() as tmp:
        ours = _run(tenant, _case(tenant, Path(tmp) / "ours"), args.batch, now)
        plain = _run(tenant, _case(tenant, Path(tmp) / "plain"), 1, now)
    if ours.pop("_found") != plain.pop("_found"):
        print("RESULTS DIFFER", file=sys.stderr)
        return 1
    print(f"{'approach':<28}{'ids':>7}{'found':>7}{'queries':>9}{'wall s':>9}{'rate-limit wait s':>19}")
    for name, row in ((f"mia ({args.batch} ids/query)", ours), ("one id per query", plain)):
        print(f"{name:<28}{row['ids']:>7}{row['with_metadata']:>7}{row['queries']:>9}{row['wall_s']:>9}"
              f"{row['rate_limit_wait_s']:>19}")
    print(json.dumps({"records": args.records, "ours": ours, "one_per_query": plain}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

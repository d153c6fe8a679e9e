"""Benchmark: the two collection sources on the same simulated tenant, over the REST backend.

    .venv/bin/python benchmarks/bench_graph_audit.py                      # 10k uniform, 10k bursty, 100k bursty
    .venv/bin/python benchmarks/bench_graph_audit.py --sizes 10000 --latency 0.1

``ual`` is Search-UnifiedAuditLog through InvokeCommand (adaptive windows, 5,000-row calls);
``graph-audit`` is the Microsoft Graph audit log query API (one server-side query per window, polled,
then ``records`` paged 1,000 at a time). Both run against one RestSimServer per tenant with the same
per-call latency (``TenantConfig.latency_s``, applied to every cmdlet call and every audit-query
request) and a simulated search time for Graph queries (``--search-s``: notStarted + running). It
reports HTTP requests by route, wall time and records recovered against the tenant's truth; a last
row per size lowers the record-count limit below N to show what splitting costs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.collect import AuditQuery, CollectOptions, collect
from mia_bridge.collect.graph_options import GraphAuditOptions
from mia_bridge.evidence.store import read_records
from mia_bridge.sim.rest_server import RestSimServer
from mia_bridge.sim.rest_session import sim_backend
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import TenantConfig

START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 30


@dataclass
class Row:
    n: int
    distribution: str
    source: str
    requests: int
    polls: int
    record_pages: int
    queries: int
    recovered: int
    truth: int
    wall_s: float
    note: str = ""


def run(n: int, distribution: str, latency: float, search_s: float, concurrency: int) -> list[Row]:
    tenant = build_tenant(TenantConfig(seed=11, latency_s=latency), scenario="benign", records=n,
                          distribution=distribution, start=START, days=DAYS)
    query = AuditQuery("ual", START, START + timedelta(days=DAYS))
    truth = {r["Id"] for r in tenant.query_truth(start=query.start, end=query.end)}
    rows = []
    graph = GraphAuditOptions()  # the real poll policy: 2 s, ×1.5, at most 60 s
    variants = [("ual", None, ""), ("graph-audit", None, "limit 1,000,000"),
                ("graph-audit", max(1000, n * 2 // 5), f"limit {max(1000, n * 2 // 5):,} (splits)")]
    for source, limit, note in variants:
        with RestSimServer(tenant) as server, sim_backend(ConnectionSettings(backend="rest"), server) as exo:
            server.audit.not_started_s, server.audit.running_s = min(2.0, search_s / 3), search_s
            if limit:
                server.audit.record_count_limit = limit
            out = Path(tempfile.mkdtemp(prefix="mia-bench-graph-"))
            options = CollectOptions(concurrency=concurrency, check_ingestion=False, source=source,
                                     graph=replace(graph) if source == "graph-audit" else None)
            before = len(server.requests)
            began = time.monotonic()
            collect(exo, [query], out, options)
            wall = time.monotonic() - began
            seen = server.requests[before:]
            got = {r["Id"] for r in read_records(out / "evidence" / "ual.jsonl")}
            shutil.rmtree(out, ignore_errors=True)
            audit = [r for r in seen if "auditLog" in r.path]
            rows.append(Row(
                n=n, distribution=distribution, source=source,
                requests=sum(1 for r in seen if "InvokeCommand" in r.path or "auditLog" in r.path),
                polls=sum(1 for r in audit if r.method == "GET" and "/records" not in r.path),
                record_pages=sum(1 for r in audit if "/records" in r.path),
                queries=sum(1 for r in audit if r.method == "POST"),
                recovered=len(got & truth) if got == truth else -len(got ^ truth), truth=len(truth),
                wall_s=round(wall, 1), note=note,
            ))
            print(json.dumps(rows[-1].__dict__), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000:uniform,10000:bursty,100000:bursty")
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per call/request (default 0.3)")
    parser.add_argument("--search-s", type=float, default=6.0, help="simulated Graph search time (default 6 s)")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    rows: list[Row] = []
    for item in args.sizes.split(","):
        n, _, distribution = item.partition(":")
        rows += run(int(n), distribution or "bursty", args.latency, args.search_s, args.concurrency)
    print("| N | tenant | source | HTTP requests | status polls | records pages | queries created | recovered | "
          "wall s | note |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rec = f"{r.recovered:,} of {r.truth:,}" if r.recovered >= 0 else f"MISMATCH ({-r.recovered})"
        print(f"| {r.n:,} | {r.distribution} | {r.source} | {r.requests} | {r.polls} | {r.record_pages} | "
              f"{r.queries} | {rec} | {r.wall_s} | {r.note} |")


if __name__ == "__main__":
    main()

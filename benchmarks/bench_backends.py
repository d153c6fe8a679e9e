"""Both bridge backends side by side: retrieve every record of a seeded simulated tenant.

    .venv/bin/python benchmarks/bench_backends.py [--records 10000] [--repeat 3]

Same tenant seed, same calls (Search-UnifiedAuditLog -SessionCommand ReturnLargeSet -ResultSize 5000
until a short page), each backend against its own loopback simulator with the transport it uses in
production: pypsrp over WinRM HTTPS + NTLM message encryption to the PSRP simulator (``psrp``), and
httpx + MSAL over HTTPS to the admin-API simulator (``rest``; pages of 1000 as the module asks).
Connection set-up (NTLM logon and Connect-ExchangeOnline; OpenID discovery and the token) is outside
the timing. Then the whole collector (``collect()``: windows, sessions, evidence written and hashed,
manifest) runs over each backend with ``--concurrency`` workers (one connection each).
Prints one JSON line per run and a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from mia_bridge.bridge.backend import CmdletCall, ExoBackend
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.sim.backend import SimOptions, sim_session, tenant_for


def _window(tenant: Any) -> tuple[datetime, datetime]:
    times = [datetime.fromisoformat(r["CreationTime"]).replace(tzinfo=UTC) for r in tenant.audit_records()]
    return min(times), max(times) + timedelta(seconds=1)


def _retrieve(backend: ExoBackend, start: datetime, end: datetime, session: str) -> tuple[int, int, set[str]]:
    """(rows, calls, unique record ids) for one ReturnLargeSet session."""
    rows = calls = 0
    ids: set[str] = set()
    while True:
        result = backend.invoke(
            CmdletCall(
                "Search-UnifiedAuditLog",
                {
                    "StartDate": start,
                    "EndDate": end,
                    "SessionId": session,
                    "SessionCommand": "ReturnLargeSet",
                    "ResultSize": 5000,
                },
            )
        )
        calls += 1
        rows += len(result.output)
        ids.update(json.loads(r["AuditData"])["Id"] for r in result.output)
        if len(result.output) < 5000:
            return rows, calls, ids


def run(records: int, repeat: int) -> list[dict[str, Any]]:
    conn, options = ConnectionSettings(), SimOptions(records=records, seed=1)
    times: dict[str, list[float]] = {"psrp": [], "rest": []}
    counts: dict[str, tuple[int, int, int]] = {}
    for i in range(repeat + 1):  # round 0 warms up imports and caches; runs alternate to share the noise
        for name in ("psrp", "rest") if i % 2 == 0 else ("rest", "psrp"):
            tenant = tenant_for(conn, options)
            start, end = _window(tenant)
            with sim_session(replace(conn, backend=name), tenant=tenant) as sim:
                began = time.perf_counter()
                rows, calls, ids = _retrieve(sim.backend, start, end, f"bench-{i}")
                elapsed = time.perf_counter() - began
            if i > 0:
                times[name].append(elapsed)
            counts[name] = (rows, calls, len(ids))
    results = []
    for name, samples in times.items():
        rows, calls, unique = counts[name]
        median = statistics.median(samples)
        line = {
            "backend": name,
            "records": records,
            "rows": rows,
            "unique": unique,
            "calls": calls,
            "median_s": round(median, 3),
            "min_s": round(min(samples), 3),
            "records_per_s": round(rows / median),
        }
        print(json.dumps(line))
        results.append(line)
    return results


def run_collect(records: int, repeat: int, concurrency: int) -> list[dict[str, Any]]:
    """The whole collector (windows, sessions, evidence, manifest) over each backend."""
    import tempfile
    from pathlib import Path

    from mia_bridge.collect.engine import CollectOptions, collect
    from mia_bridge.collect.query import AuditQuery

    conn, options = ConnectionSettings(), SimOptions(records=records, seed=1)
    times: dict[str, list[float]] = {"psrp": [], "rest": []}
    counts: dict[str, tuple[int, int]] = {}
    for i in range(repeat + 1):
        for name in ("psrp", "rest") if i % 2 == 0 else ("rest", "psrp"):
            tenant = tenant_for(conn, options)
            start, end = _window(tenant)
            query = AuditQuery(name="ual", start=start, end=end)
            with tempfile.TemporaryDirectory() as case, sim_session(replace(conn, backend=name), tenant=tenant) as sim:
                began = time.perf_counter()
                result = collect(sim.backend, [query], Path(case), CollectOptions(concurrency=concurrency))
                elapsed = time.perf_counter() - began
                lines = sum(1 for _ in (Path(case) / "evidence" / "ual.jsonl").open())
            if i > 0:
                times[name].append(elapsed)
            counts[name] = (lines, result.calls)
    results = []
    for name, samples in times.items():
        lines, calls = counts[name]
        median = statistics.median(samples)
        line = {
            "backend": f"{name} (mia collect, concurrency {concurrency})",
            "records": records,
            "rows": lines,
            "calls": calls,
            "median_s": round(median, 3),
            "min_s": round(min(samples), 3),
            "records_per_s": round(lines / median),
        }
        print(json.dumps(line))
        results.append(line)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4, help="collector workers for the collect runs")
    args = parser.parse_args()
    results = run(args.records, args.repeat) + run_collect(args.records, args.repeat, args.concurrency)
    print("\n| backend | records | calls | median s | min s | records/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['backend']} | {r['rows']} | {r['calls']} | {r['median_s']} | {r['min_s']} | {r['records_per_s']} |"
        )


if __name__ == "__main__":
    main()

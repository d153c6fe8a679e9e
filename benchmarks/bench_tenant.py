"""Simulated tenant model at scale: build time, memory, and query latency against the straightforward
approach, in the same run.

    .venv/bin/python benchmarks/bench_tenant.py              # 1,000,000 records (about 1-2 minutes)
    .venv/bin/python benchmarks/bench_tenant.py --records 200000

Rows:
- build: ``build_tenant`` (templated noise, columnar store) vs generating the same kind of records as
  dicts with ``json.dumps`` each (measured on a sample and scaled, so the run stays short);
- queries: the store (bisect on time + vectorised filters) vs a linear scan over per-record tuples
  (time, operation, user) -- the straightforward in-memory index -- for a 1-hour window, a 1-day
  window with an operation filter, and a whole-month user + operation search.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mia_bridge.sim.scenario import DEFAULT_START, World, build_tenant
from mia_bridge.sim.tenant import TenantConfig
from mia_bridge.sim.tenant_store import epoch_seconds, normalise_operation


def best(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def dict_generation_rate(sample: int) -> float:
    """Records per second when each benign record is built as a dict and serialised (the plain way)."""
    import random

    from mia_bridge.sim.tenant import Tenant

    world = World(TenantConfig(), Tenant().tenant_id, random.Random(0), user_count=12)
    f = world.factory
    t0 = time.perf_counter()
    for i in range(sample):
        user = world.users[i % len(world.users)]
        when = DEFAULT_START + timedelta(seconds=i)
        kind = i % 4
        if kind == 0:
            rec = f.bind(when, user, {"\\Inbox": user.messages["\\Inbox"][:2]}, user.office_ip)
        elif kind == 1:
            rec = f.mailbox_login(when, user, user.office_ip)
        elif kind == 2:
            rec = f.user_logged_in(when, user, user.home_ip)
        else:
            rec = f.file_accessed(when, user, user.office_ip, file_name="Budget.xlsx")
        json.dumps(rec, separators=(",", ":"))
    return sample / (time.perf_counter() - t0)


def template_generation_rate(sample: int) -> float:
    """Records per second of ``add_noise`` (templates) into a fresh store, merge excluded."""
    import random

    from mia_bridge.sim.scenario_noise import add_noise
    from mia_bridge.sim.tenant import Tenant
    from mia_bridge.sim.tenant_store import AuditStore

    world = World(TenantConfig(), Tenant().tenant_id, random.Random(0), user_count=12)
    store = AuditStore()
    t0 = time.perf_counter()
    add_noise(store, world.factory, world.users, sample, "uniform", DEFAULT_START, DEFAULT_START + timedelta(days=30),
              0)
    return sample / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.records

    t0 = time.perf_counter()
    tenant = build_tenant(records=n)
    build_s = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rate = dict_generation_rate(50_000)
    templated = template_generation_rate(50_000)
    print(f"records: {len(tenant):,}")
    print(f"build_tenant: {build_s:.1f} s ({n / build_s:,.0f} records/s), peak RSS {peak_mb:,.0f} MB")
    print(f"benign record generation, 50,000 records: templates {templated:,.0f} records/s vs "
          f"dict + json.dumps {rate:,.0f} records/s ({templated / rate:.1f}x)")

    # The straightforward index: one (epoch, operation, user) tuple per record, scanned linearly.
    store = tenant.store
    t0 = time.perf_counter()
    plain = []
    for text in store.json:
        rec = json.loads(text)
        plain.append((epoch_seconds(datetime.fromisoformat(rec["CreationTime"]).replace(tzinfo=UTC)),
                      normalise_operation(rec["Operation"]), str(rec.get("UserId", "")).lower()))
    index_s = time.perf_counter() - t0
    print(f"straightforward index build (json.loads per record): {index_s:.1f} s")

    victim = tenant.truth.victims[0] if tenant.truth else ""
    day = DEFAULT_START + timedelta(days=20)
    cases = [
        ("1-hour window", day, day + timedelta(hours=1), None, None),
        ("1-day window, Operations=MailItemsAccessed", day, day + timedelta(days=1), ["MailItemsAccessed"], None),
        ("30 days, UserIds=victim, Operations=MailItemsAccessed", DEFAULT_START, DEFAULT_START + timedelta(days=30),
         ["MailItemsAccessed"], [victim]),
    ]
    print()
    print("| query | store ms | linear scan ms | speed-up | matches |")
    print("|---|---:|---:|---:|---:|")
    for label, start, end, ops, users in cases:
        s, e = epoch_seconds(start), epoch_seconds(end)

        def fast(start: datetime = start, end: datetime = end, ops: list[str] | None = ops,
                 users: list[str] | None = users) -> object:
            return tenant.select(start=start, end=end, operations=ops, user_ids=users)

        def slow(s: int = s, e: int = e, ops: list[str] | None = ops, users: list[str] | None = users) -> object:
            want_ops = {normalise_operation(o) for o in ops} if ops else None
            want_users = {u.lower() for u in users} if users else None
            return [i for i, (t, op, user) in enumerate(plain)
                    if s <= t < e and (want_ops is None or op in want_ops)
                    and (want_users is None or user in want_users)]

        fast_s, fast_r = best(fast, args.repeat)
        slow_s, slow_r = best(slow, max(1, args.repeat // 2))
        assert sorted(fast_r) == sorted(slow_r)  # type: ignore[arg-type]
        print(f"| {label} | {fast_s * 1000:.2f} | {slow_s * 1000:.1f} | {slow_s / fast_s:,.0f}x | "
              f"{len(fast_r):,} |")  # type: ignore[arg-type]
    print()
    print(f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"run at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()

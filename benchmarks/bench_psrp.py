"""The PSRP bridge's own costs, each against the straightforward alternative in the same run.

    .venv/bin/python benchmarks/bench_psrp.py [--objects 3000] [--records 5000] [--repeat 3]

1. Re-reading output CLIXML into plain Python: psrpcore ``deserialize`` + ``to_plain`` (the
   straightforward way, the reference) versus ``element_to_plain`` (direct XML walk using psrpcore's
   primitive decoders), on Search-UnifiedAuditLog-shaped objects.
2. Per-cmdlet latency over loopback for each transport/auth the simulator offers.
3. Bulk retrieval (ResultSize 5000) with a 150 kB envelope (Windows Server 2008 R2's limit) versus
   the 500 kB the backend sets before the pool opens (Windows' default MaxEnvelopeSizekb). pypsrp
   itself raises exactly 153600 to 512000 once the server speaks PSRP 2.2, so the small case uses
   153601 to keep the small envelope.
Prints JSON lines and a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psrpcore
from psrpcore.types import serialize

from mia_bridge.bridge.backend import CmdletCall, Secret
from mia_bridge.bridge.clixml import element_to_plain, reread, to_plain
from mia_bridge.bridge.winrm import WinRMBackend, WinRMSettings
from mia_bridge.sim import registry
from mia_bridge.sim.psrp_server import encode_object
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.server import SimServer
from mia_bridge.sim.tenant import DEFAULT_APP_ID, DEFAULT_ORGANIZATION, DEFAULT_THUMBPRINT, TenantConfig

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
PASSWORD = "bench-pw"


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_reread(objects: int, repeat: int) -> dict[str, Any]:
    tenant = build_tenant(TenantConfig(seed=11), records=objects)
    session = tenant.open_session()
    session.connected_exchange = True
    out = registry.dispatch(session, "Search-UnifiedAuditLog", {"StartDate": EPOCH, "EndDate": FUTURE,
                                                                 "ResultSize": min(objects, 5000)})
    cipher = psrpcore.PSRemotingCrypto()
    xmls = [ET.tostring(serialize(encode_object(o), cipher), encoding="unicode") for o in out.objects]
    reference = best(lambda: [to_plain(reread(x)) for x in xmls], repeat)
    direct = best(lambda: [element_to_plain(ET.fromstring(x)) for x in xmls], repeat)
    assert [element_to_plain(ET.fromstring(x)) for x in xmls[:50]] == [to_plain(reread(x)) for x in xmls[:50]]
    return {"bench": "clixml_reread", "objects": len(xmls), "psrpcore_s": round(reference, 3),
            "direct_s": round(direct, 3), "speedup": round(reference / direct, 1)}


def _settings(sim: SimServer, **kw: Any) -> WinRMSettings:
    return WinRMSettings(
        server="127.0.0.1", port=sim.port, transport=sim.transport, auth=sim.auth, username="mia",
        password=Secret(PASSWORD), ca_bundle=str(sim.ca_path) if sim.ca_path else None,
        organization=DEFAULT_ORGANIZATION, app_id=DEFAULT_APP_ID, certificate_thumbprint=DEFAULT_THUMBPRINT, **kw,
    )


def bench_latency(repeat: int, calls: int = 20) -> list[dict[str, Any]]:
    rows = []
    tenant = build_tenant(TenantConfig(seed=11), records=10)
    for transport, auth in (("http", "basic"), ("http", "ntlm"), ("https", "negotiate")):
        with SimServer(tenant, transport=transport, auth=auth, password=PASSWORD) as sim, \
                WinRMBackend(_settings(sim)) as exo:
            elapsed = best(lambda exo=exo: [exo.invoke(CmdletCall("Get-ConnectionInformation")) for _ in range(calls)],
                           repeat)
        rows.append({"bench": "cmdlet_latency", "transport": transport, "auth": auth,
                     "ms_per_cmdlet": round(elapsed / calls * 1000, 1)})
    return rows


def bench_envelope(records: int, repeat: int) -> list[dict[str, Any]]:
    rows = []
    tenant = build_tenant(TenantConfig(seed=11), records=records)
    with SimServer(tenant, transport="http", auth="ntlm", password=PASSWORD) as sim:
        for label, size in (("150 kB", 153_601), ("500 kB", 512_000)):
            settings = replace(_settings(sim), max_envelope_size=size)
            with WinRMBackend(settings) as exo:
                receives = sim.service.action_counts["Receive"]

                def pull(exo: WinRMBackend = exo) -> int:
                    return len(exo.invoke(CmdletCall("Search-UnifiedAuditLog", {
                        "StartDate": EPOCH, "EndDate": FUTURE, "ResultSize": 5000})).output)

                got = pull()
                per_call_receives = sim.service.action_counts["Receive"] - receives
                elapsed = best(pull, repeat)
            rows.append({"bench": "bulk_5000", "envelope": label, "records": got, "seconds": round(elapsed, 3),
                         "records_per_s": round(got / elapsed), "receives_per_call": per_call_receives})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=3000)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = [bench_reread(args.objects, args.repeat), *bench_latency(args.repeat),
               *bench_envelope(args.records, args.repeat)]
    for row in results:
        print(json.dumps(row))
    print()
    print("| benchmark | setting | result | straightforward | ratio |")
    print("|---|---|---|---|---|")
    r = results[0]
    print(f"| CLIXML re-read, {r['objects']} audit objects | direct reader vs psrpcore objects | {r['direct_s']} s | "
          f"{r['psrpcore_s']} s | {r['speedup']}x faster |")
    for r in results:
        if r["bench"] == "cmdlet_latency":
            print(f"| one cmdlet round trip | {r['transport']} + {r['auth']} | {r['ms_per_cmdlet']} ms | | |")
    bulk = [r for r in results if r["bench"] == "bulk_5000"]
    if len(bulk) == 2:
        print(f"| Search-UnifiedAuditLog -ResultSize 5000 | 500 kB envelope vs pypsrp's 150 kB | "
              f"{bulk[1]['seconds']} s ({bulk[1]['receives_per_call']} Receives) | {bulk[0]['seconds']} s "
              f"({bulk[0]['receives_per_call']} Receives) | {round(bulk[0]['seconds'] / bulk[1]['seconds'], 2)}x |")
    print(f"\nrecorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


if __name__ == "__main__":
    main()

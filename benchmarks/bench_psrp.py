"""The PSRP bridge's own costs, each against the straightforward alternative in the same run.

    .venv/bin/python benchmarks/bench_psrp.py [--objects 3000] [--records 5000] [--repeat 3]

1. Server side, writing output CLIXML: psrpcore PSObjects + ``serialize`` (straightforward) versus
   ``clixml_writer.object_clixml`` (byte-identical XML written directly).
   Client side, reading it into plain Python: psrpcore ``deserialize`` + ``to_plain`` versus
   ``element_to_plain`` (direct XML walk using psrpcore's primitive decoders).
   End to end, 5000 records in one call: plain pypsrp ``PowerShell.invoke`` + psrpcore re-read of
   each object versus ``WinRMBackend.invoke`` (CLIXML kept as text, read once), same server.
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
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from mia_bridge.bridge.backend import CmdletCall, Secret
from mia_bridge.bridge.clixml import element_to_plain, reread, to_plain
from mia_bridge.bridge.winrm import WinRMBackend, WinRMSettings, ps_datetime
from mia_bridge.sim import registry
from mia_bridge.sim.clixml_writer import object_clixml
from mia_bridge.sim.psrp_values import encode_object
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


def bench_write(objects: int, repeat: int) -> dict[str, Any]:
    tenant = build_tenant(TenantConfig(seed=11), records=objects)
    session = tenant.open_session()
    session.connected_exchange = True
    out = registry.dispatch(session, "Search-UnifiedAuditLog", {"StartDate": EPOCH, "EndDate": FUTURE,
                                                                 "ResultSize": min(objects, 5000)})
    cipher = psrpcore.PSRemotingCrypto()
    reference = best(lambda: [ET.tostring(serialize(encode_object(o), cipher)) for o in out.objects], repeat)
    direct = best(lambda: [object_clixml(o) for o in out.objects], repeat)
    return {"bench": "clixml_write", "objects": len(out.objects), "psrpcore_s": round(reference, 3),
            "direct_s": round(direct, 3), "speedup": round(reference / direct, 1)}


def bench_end_to_end(records: int, repeat: int) -> dict[str, Any]:
    tenant = build_tenant(TenantConfig(seed=11), records=records)
    params = {"StartDate": EPOCH, "EndDate": FUTURE, "ResultSize": min(records, 5000)}
    with SimServer(tenant, transport="http", auth="ntlm", password=PASSWORD) as sim:
        with WinRMBackend(_settings(sim)) as exo:
            backend_cpu, backend_wall = _cpu_and_wall(
                lambda: exo.invoke(CmdletCall("Search-UnifiedAuditLog", params)), repeat)
        wsman = WSMan("127.0.0.1", port=sim.port, ssl=False, auth="ntlm", username="mia", password=PASSWORD,
                      max_envelope_size=512_000)
        with wsman, RunspacePool(wsman) as pool:
            ps = PowerShell(pool)
            ps.add_cmdlet("Connect-ExchangeOnline").add_parameters({
                "AppId": DEFAULT_APP_ID, "Organization": DEFAULT_ORGANIZATION,
                "CertificateThumbprint": DEFAULT_THUMBPRINT})
            ps.invoke()

            def plain() -> None:
                ps = PowerShell(pool)
                ps.add_cmdlet("Search-UnifiedAuditLog")
                for key, value in params.items():
                    ps.add_parameter(key, ps_datetime(value) if isinstance(value, datetime) else value)
                ps.invoke()
                [to_plain(reread(o)) for o in ps.output]

            plain_cpu, plain_wall = _cpu_and_wall(plain, repeat)
    return {"bench": "end_to_end", "records": min(records, 5000), "backend_cpu_s": backend_cpu,
            "backend_wall_s": backend_wall, "plain_pypsrp_cpu_s": plain_cpu, "plain_pypsrp_wall_s": plain_wall,
            "cpu_speedup": round(plain_cpu / backend_cpu, 1)}


def _cpu_and_wall(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return round(min(cpu), 3), round(min(wall), 3)


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

            def run(exo: WinRMBackend = exo) -> None:
                for _ in range(calls):
                    exo.invoke(CmdletCall("Get-ConnectionInformation"))

            elapsed = best(run, repeat)
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
    results = [bench_write(args.objects, args.repeat), bench_reread(args.objects, args.repeat),
               bench_end_to_end(args.records, args.repeat), *bench_latency(args.repeat),
               *bench_envelope(args.records, args.repeat)]
    for row in results:
        print(json.dumps(row))
    print()
    print("| benchmark | setting | result | straightforward | ratio |")
    print("|---|---|---|---|---|")
    w, r, e = results[0], results[1], results[2]
    print(f"| server: write CLIXML, {w['objects']} audit objects | direct writer vs psrpcore objects | "
          f"{w['direct_s']} s | {w['psrpcore_s']} s | {w['speedup']}x faster |")
    print(f"| client: read CLIXML, {r['objects']} audit objects | direct reader vs psrpcore objects | "
          f"{r['direct_s']} s | {r['psrpcore_s']} s | {r['speedup']}x faster |")
    print(f"| one call of {e['records']} records, NTLM+encryption, client+server CPU | WinRMBackend vs pypsrp "
          f"invoke + psrpcore re-read | {e['backend_cpu_s']} s CPU ({e['backend_wall_s']} s wall) | "
          f"{e['plain_pypsrp_cpu_s']} s CPU ({e['plain_pypsrp_wall_s']} s wall) | {e['cpu_speedup']}x less CPU |")
    for r in results:
        if r["bench"] == "cmdlet_latency":
            print(f"| one cmdlet round trip | {r['transport']} + {r['auth']} | {r['ms_per_cmdlet']} ms | | |")
    bulk = [r for r in results if r["bench"] == "bulk_5000"]
    if len(bulk) == 2:
        print(f"| Search-UnifiedAuditLog -ResultSize 5000 | 500 kB envelope vs 150 kB | "
              f"{bulk[1]['seconds']} s ({bulk[1]['receives_per_call']} Receives) | {bulk[0]['seconds']} s "
              f"({bulk[0]['receives_per_call']} Receives) | {round(bulk[0]['seconds'] / bulk[1]['seconds'], 2)}x |")
    print(f"\nrecorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


if __name__ == "__main__":
    main()

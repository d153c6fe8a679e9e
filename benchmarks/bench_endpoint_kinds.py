"""The two jump-host endpoint kinds side by side, against the strict (depth-1) PSRP simulator.

    .venv/bin/python benchmarks/bench_endpoint_kinds.py [--records 20000] [--repeat 3]

``plain``: the cmdlets, nested Graph data through a ``ConvertTo-Json -Depth 10 -Compress`` stage;
``jea``: the MiaBridge endpoint, the role capability's functions (parameter binding by their param()
blocks, one JSON string per Graph object). Per kind, on a seeded tenant, over HTTPS + NTLM:
every audit record through ReturnLargeSet sessions; licence detection and the directory inventory (the
Graph calls whose nested data needs JSON); every message of every mailbox through Get-MgUserMessage.
Connection set-up is outside the timings. Prints one JSON line per run and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mia_bridge.bridge.backend import CmdletCall, ExoBackend
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.collect.retry import RetryPolicy
from mia_bridge.enrich.mailbox_metadata import MailboxMetadata
from mia_bridge.investigate.directory import collect_directory
from mia_bridge.investigate.license import detect_license
from mia_bridge.sim.backend import SimOptions, sim_session, tenant_for

KINDS = {"plain": "Microsoft.PowerShell", "jea": "MiaBridge"}


def _records(backend: ExoBackend, start: datetime, end: datetime) -> int:
    ids: set[str] = set()
    session = f"bench-{time.monotonic_ns()}"
    while True:
        result = backend.invoke(CmdletCall("Search-UnifiedAuditLog", {
            "StartDate": start, "EndDate": end, "SessionId": session, "SessionCommand": "ReturnLargeSet",
            "ResultSize": 5000}, select=("Identity", "CreationDate", "AuditData", "ResultIndex", "ResultCount")))
        ids.update(str(r["Identity"]) for r in result.output)
        if len(result.output) < 5000:
            return len(ids)


def run(records: int, repeat: int) -> list[dict[str, Any]]:
    results = []
    base = ConnectionSettings(auth="ntlm", transport="https")
    tenant = tenant_for(base, SimOptions(records=records, seed=1))
    times = [datetime.fromisoformat(r["CreationTime"]).replace(tzinfo=UTC) for r in tenant.audit_records()]
    start, end = min(times), max(times) + timedelta(seconds=1)
    boxes = [str(b["UserPrincipalName"]).lower() for b in tenant.directory.mailboxes]
    for kind, configuration in KINDS.items():
        conn = ConnectionSettings(auth="ntlm", transport="https", configuration_name=configuration)
        for attempt in range(repeat):
            with sim_session(conn, tenant=tenant) as session, tempfile.TemporaryDirectory() as folder:
                backend = session.backend
                began = time.perf_counter()
                found = _records(backend, start, end)
                audit_s = time.perf_counter() - began
                began = time.perf_counter()
                facts = detect_license(backend, [])
                directory = collect_directory(backend, Path(folder))
                graph_s = time.perf_counter() - began
                began = time.perf_counter()
                metadata = MailboxMetadata(backend, retry=RetryPolicy())
                messages = sum(len(metadata.messages_before(box, datetime.now(UTC))) for box in boxes)
                mail_s = time.perf_counter() - began
            row = {"kind": kind, "attempt": attempt, "records": found, "audit_s": round(audit_s, 3),
                   "premium": facts.premium, "graph_permissions": len(directory.graph_permissions),
                   "licence_and_directory_s": round(graph_s, 3), "messages": messages,
                   "messages_s": round(mail_s, 3)}
            print(json.dumps(row), flush=True)
            results.append(row)
    return results


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| kind | records | audit records, median s | licence + directory, median s | messages | "
             "Get-MgUserMessage for all mailboxes, median s |", "|---|---|---|---|---|---|"]
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        lines.append(
            f"| {kind} | {mine[0]['records']} | {statistics.median(r['audit_s'] for r in mine):.3f} | "
            f"{statistics.median(r['licence_and_directory_s'] for r in mine):.3f} | {mine[0]['messages']} | "
            f"{statistics.median(r['messages_s'] for r in mine):.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(table(run(args.records, args.repeat)))


if __name__ == "__main__":
    main()

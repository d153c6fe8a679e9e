"""Deterministic generator of realistic, SYNTHETIC MailItemsAccessed audit records.

Used by the benchmark (N records as JSON lines and as a Purview CSV) and to build the bundled demo
sample (``python benchmarks/gen_records.py --demo``). Shapes follow the documented AuditData schema:
binds with several folders and items (RecordType 50), syncs (folders without items, and the RecordType 2
``Item.ParentFolder`` shape), throttled records, a few non-mail operations. Addresses are documentation
ranges (RFC 5737) and the domain is contoso.example.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

OWA = "00000002-0000-0ff1-ce00-000000000000"
GRAPH = "00000003-0000-0000-c000-000000000000"
OUTLOOK = "d3590ed6-52b3-4102-aeff-aad2292ab01c"
ROGUE_APP = "5a95e683-08ad-424e-a441-1d1aec52c02c"
FOLDERS = ["\\Inbox", "\\Sent Items", "\\Archive", "\\Inbox\\Finance", "\\Drafts"]
PURVIEW_HEADER = ["RecordId", "CreationDate", "RecordType", "Operation", "UserId", "AuditData",
                  "AssociatedAdminUnits", "AssociatedAdminUnitsNames"]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _props(access: str, throttled: bool) -> list[dict[str, str]]:
    return [{"Name": "MailAccessType", "Value": access}, {"Name": "IsThrottled", "Value": str(throttled)}]


def _base(rng: random.Random, when: datetime, user: str, ip: str, app: str, client: str, session: str | None,
          record_type: int = 50) -> dict[str, Any]:
    record: dict[str, Any] = {
        "CreationTime": when.strftime("%Y-%m-%dT%H:%M:%S"),
        "Id": _uuid(rng),
        "Operation": "MailItemsAccessed",
        "OrganizationId": "0b5f2c8e-0000-4000-8000-00000000c0de",
        "RecordType": record_type,
        "ResultStatus": "Succeeded",
        "UserKey": "10032001A1B2C3D4",
        "UserType": 0,
        "Version": 1,
        "Workload": "Exchange",
        "UserId": user,
        "AppId": app,
        "ClientAppId": ROGUE_APP if app == GRAPH else "",
        "ClientIPAddress": ip,
        "ClientInfoString": client,
        "ExternalAccess": False,
        "InternalLogonType": 0,
        "LogonType": 0,
        "LogonUserSid": "S-1-5-21-1111111111-2222222222-3333333333-1001",
        "MailboxGuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, user)),
        "MailboxOwnerSid": "S-1-5-21-1111111111-2222222222-3333333333-1001",
        "MailboxOwnerUPN": user,
        "OrganizationName": "contoso.onmicrosoft.com",
        "OriginatingServer": "CY5PR05MB0000 (15.20.4200.000)\r\n",
    }
    if session:
        record["SessionId"] = session
    return record


def _message_id(rng: random.Random, mailbox_index: int, pool: int) -> str:
    return f"<msg{mailbox_index:03d}-{rng.randrange(pool):06d}@CY5PR05MB0000.namprd05.prod.outlook.com>"


def _bind_folders(rng: random.Random, paths: list[str], most_items: int,
                  message_id: Callable[[], str]) -> tuple[list[dict[str, Any]], int]:
    """A bind's Folders (1..most_items items each, half with a size) and its OperationCount."""
    folders = []
    total = 0
    for path in paths:
        items = []
        for _ in range(rng.randint(1, most_items)):
            item: dict[str, Any] = {"InternetMessageId": message_id()}
            if rng.random() < 0.5:
                item["SizeInBytes"] = rng.randint(2_000, 900_000)
            items.append(item)
        total += len(items)
        folders.append({"FolderItems": items, "Id": "LgAAAAALcWhV" + _uuid(rng)[:8], "Path": path})
    return folders, total


def generate(n: int, seed: int = 7, mailboxes: int = 50, start: datetime | None = None) -> Iterator[dict[str, Any]]:
    """``n`` records: ~80% binds (1–3 folders, 1–6 items each), ~10% syncs, ~1% throttled, the rest other ops."""
    rng = random.Random(seed)
    start = start or datetime(2024, 5, 1, tzinfo=UTC)
    users = [f"user{i:03d}@contoso.example" for i in range(mailboxes)]
    sessions = {u: _uuid(rng) for u in users}
    step = timedelta(seconds=max(1, int(30 * 86400 / max(n, 1))))
    for i in range(n):
        when = start + step * i
        u = rng.randrange(mailboxes)
        user = users[u]
        attacker = rng.random() < 0.05
        ip = "203.0.113.66" if attacker else f"198.51.100.{u % 250 + 1}"
        app = GRAPH if attacker else rng.choice((OWA, OUTLOOK))
        client = "Client=REST;Client=RESTSystem;;" if attacker else "Client=OWA;Action=ViaProxy"
        roll = rng.random()
        if roll < 0.80:
            record = _base(rng, when, user, ip, app, client, None if attacker else sessions[user])
            throttled = rng.random() < 0.0125
            record["OperationProperties"] = _props("Bind", throttled)
            paths = rng.sample(FOLDERS, rng.randint(1, 3))
            record["Folders"], record["OperationCount"] = _bind_folders(rng, paths, 6,
                                                                        lambda u=u: _message_id(rng, u, 5000))
        elif roll < 0.85:
            record = _base(rng, when, user, ip, OUTLOOK, "Client=MSExchangeRPC", sessions[user])
            record["OperationProperties"] = _props("Sync", False)
            record["Folders"] = [{"Id": "LgAAAAALcWhV" + _uuid(rng)[:8], "Path": rng.choice(FOLDERS)}]
            record["OperationCount"] = 1
        elif roll < 0.90:
            record = _base(rng, when, user, ip, OUTLOOK, "Client=MSExchangeRPC", sessions[user], record_type=2)
            record["OperationProperties"] = [{"Name": "MailAccessType", "Value": "Sync"}]
            path = rng.choice(FOLDERS)
            record["Item"] = {"Id": "LgAAAAA" + _uuid(rng)[:8],
                              "ParentFolder": {"Id": "LgAAAAA" + _uuid(rng)[:8], "Name": path.rsplit("\\", 1)[-1],
                                               "Path": path}}
        else:
            record = _base(rng, when, user, ip, app, client, sessions[user], record_type=2)
            record["Operation"] = rng.choice(("Send", "MoveToDeletedItems", "Update", "SoftDelete"))
            record["Item"] = {"Id": "LgAAAAA" + _uuid(rng)[:8], "InternetMessageId": _message_id(rng, u, 5000),
                              "ParentFolder": {"Name": "Inbox", "Path": "\\Inbox"}}
        yield record


def generate_realistic(n: int, seed: int = 7, mailboxes: int | None = None,
                       start: datetime | None = None, message_base: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` records shaped like a real tenant-wide pull: thousands of mailboxes, each with a few usual IPs out
    of thousands; a new SessionId every 1–50 records (one client, IP and app per session); binds naming about
    six message ids each, nearly all of them unique; syncs (both shapes) and throttled records; sessions
    interleaved in time as the service returns them (not sorted). ``message_base``: the first message number
    of every mailbox (parts of one large corpus generated apart take disjoint ranges, see ``write_parts``)."""
    rng = random.Random(seed)
    start = start or datetime(2024, 5, 1, tzinfo=UTC)
    count = mailboxes or max(50, min(5000, n // 200))
    users = [f"user{i:04d}@contoso.example" for i in range(count)]
    # 198.18.0.0/15 is the benchmarking range (RFC 2544): up to 131,072 addresses.
    usual_ips = [[f"198.{18 + (h >> 16) % 2}.{(h >> 8) & 255}.{h & 255 or 1}"
                  for h in (rng.randrange(1 << 17) for _ in range(rng.randint(1, 4)))] for _ in users]
    attacker_ips = [f"203.0.113.{i}" for i in range(60, 70)]
    next_message = [message_base] * count
    span = 30 * 86400
    produced = 0
    while produced < n:
        u = rng.randrange(count)
        user = users[u]
        attacker = rng.random() < 0.03
        ip = rng.choice(attacker_ips) if attacker else rng.choice(usual_ips[u])
        app = GRAPH if attacker else rng.choice((OWA, OUTLOOK, OUTLOOK))
        client = "Client=REST;Client=RESTSystem;;" if attacker else (
            "Client=OWA;Action=ViaProxy" if app == OWA else "Client=MSExchangeRPC")
        session = _uuid(rng)
        when = start + timedelta(seconds=rng.randrange(span))
        throttled_session = rng.random() < 0.01
        # session lengths 1-50, most of them short (mean about 6)
        for _ in range(min(min(50, int(rng.expovariate(1 / 2)) + 1), n - produced)):
            when += timedelta(seconds=rng.randint(1, 90))
            roll = rng.random()
            if roll < 0.85:
                record = _base(rng, when, user, ip, app, client, session)
                record["OperationProperties"] = _props("Bind", throttled_session and rng.random() < 0.3)
                def message_id(u: int = u) -> str:  # mostly new mail; sometimes a message read again
                    if next_message[u] > message_base and rng.random() < 0.05:
                        number = rng.randrange(message_base, next_message[u])
                    else:
                        number = next_message[u]
                        next_message[u] += 1
                    return f"<m{u:04d}-{number:07d}@contoso.example>"

                paths = rng.sample(FOLDERS, rng.choice((1, 1, 2, 3)))
                record["Folders"], record["OperationCount"] = _bind_folders(rng, paths, 7, message_id)
            elif roll < 0.93:
                record = _base(rng, when, user, ip, app, client, session)
                record["OperationProperties"] = _props("Sync", throttled_session and rng.random() < 0.3)
                record["Folders"] = [{"Id": "LgAAAAALcWhV" + _uuid(rng)[:8], "Path": rng.choice(FOLDERS)}]
                record["OperationCount"] = 1
            elif roll < 0.97:
                record = _base(rng, when, user, ip, app, client, session, record_type=2)
                record["OperationProperties"] = [{"Name": "MailAccessType", "Value": "Sync"}]
                path = rng.choice(FOLDERS)
                record["Item"] = {"Id": "LgAAAAA" + _uuid(rng)[:8],
                                  "ParentFolder": {"Id": "LgAAAAA" + _uuid(rng)[:8],
                                                   "Name": path.rsplit("\\", 1)[-1], "Path": path}}
            else:
                record = _base(rng, when, user, ip, app, client, session, record_type=2)
                record["Operation"] = rng.choice(("Send", "MoveToDeletedItems", "Update", "SoftDelete"))
                record["Item"] = {"Id": "LgAAAAA" + _uuid(rng)[:8],
                                  "InternetMessageId": f"<m{u:04d}-{next_message[u]:07d}@contoso.example>",
                                  "ParentFolder": {"Name": "Inbox", "Path": "\\Inbox"}}
            produced += 1
            yield record


SHAPES = {"uniform": generate, "realistic": generate_realistic}


def write_jsonl(path: Path, records: Iterator[dict[str, Any]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for record in records:
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
            count += 1
    return count


def _write_part(args: tuple[str, Path, int, int, int]) -> int:
    shape, path, n, seed, part = args
    if shape == "realistic":
        # Mailbox count as for the whole corpus; each part's messages numbered apart, so ids stay unique.
        records = generate_realistic(n, seed=seed, mailboxes=5000, message_base=part * 10_000_000)
    else:
        records = generate(n, seed=seed)
    return write_jsonl(path, records)


def write_parts(path: Path, shape: str, n: int, jobs: int, seed: int = 7) -> int:
    """``n`` records of ``shape`` as one JSON-lines file, generated in ``jobs`` processes (part ``p`` seeded
    apart, its message ids numbered apart) and concatenated: a large corpus whose sessions, contexts and unique
    message ids grow with ``n``, as a real tenant's do. Not the same records as one ``shape(n)`` stream."""
    import multiprocessing
    import os

    sizes = [n // jobs + (1 if p < n % jobs else 0) for p in range(jobs)]
    parts = [path.with_name(f"{path.name}.part{p}") for p in range(jobs)]
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        written = sum(pool.map(_write_part, [(shape, parts[p], sizes[p], seed * 1000 + p, p) for p in range(jobs)]))
    with path.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                copied = 0
                while copied < size:
                    copied += os.copy_file_range(handle.fileno(), out.fileno(), size - copied)
            part.unlink()
    return written


def purview_date(when: str) -> str:
    parsed = datetime.fromisoformat(when)
    hour = parsed.hour % 12 or 12
    return f"{parsed.month}/{parsed.day}/{parsed.year} {hour}:{parsed.minute:02d}:{parsed.second:02d} " + (
        "AM" if parsed.hour < 12 else "PM"
    )


def write_purview_csv(path: Path, records: Iterator[dict[str, Any]], encoding: str = "utf-8-sig") -> int:
    count = 0
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        writer.writerow(PURVIEW_HEADER)
        for record in records:
            writer.writerow([record["Id"], purview_date(record["CreationTime"]), record["RecordType"],
                             record["Operation"], record["UserId"], json.dumps(record, separators=(",", ":")), "", ""])
            count += 1
    return count


def write_demo(out: Path) -> None:
    """The bundled demo: a raw JSONL dump and a Purview CSV that overlaps it (duplicates across formats)."""
    out.mkdir(parents=True, exist_ok=True)
    records = list(generate(400, seed=2024, mailboxes=6))
    write_jsonl(out / "unified_audit_log.jsonl", iter(records[:300]))
    write_purview_csv(out / "purview_export.csv", iter(records[250:]))
    binds = [r for r in records if r["Operation"] == "MailItemsAccessed" and r.get("Folders")
             and r["Folders"][0].get("FolderItems") and r["ClientIPAddress"] == "203.0.113.66"]
    wanted = [binds[0]["Folders"][0]["FolderItems"][0]["InternetMessageId"].strip("<>").upper(),
              "<never-seen-message@contoso.example>"]
    text = "# InternetMessageIds to look up\n" + "\n".join(wanted) + "\n"
    (out / "message_ids.txt").write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, help="write the demo sample into this directory")
    parser.add_argument("--jsonl", type=Path)
    parser.add_argument("--purview-csv", type=Path)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="uniform",
                        help="uniform: 50 mailboxes, one session each (the original benchmark shape); realistic: "
                             "thousands of mailboxes and IPs, a session every 1-50 records, ~6 new ids per bind")
    args = parser.parse_args()
    shape = SHAPES[args.shape]
    if args.demo:
        write_demo(args.demo)
    if args.jsonl:
        write_jsonl(args.jsonl, shape(args.n))
    if args.purview_csv:
        write_purview_csv(args.purview_csv, shape(args.n))


if __name__ == "__main__":
    main()

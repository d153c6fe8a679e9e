"""Cost of the CSV-injection rule on the analysis' largest table, measured on its own.

    .venv/bin/python benchmarks/bench_csv_safety.py [--rows 1100000] [--hostile-share 0.001] [--repeat 5]

Builds an item-like table (11 text columns, the shape of ``analysis/items.csv``: 200,000 records give about
1.1 M items), then times ``csv_safety.neutralise_table`` on it with no formula cell (the usual case: one
scan per column) and with ``--hostile-share`` of one column's cells starting with ``=``, and writing the
table to CSV with pyarrow, which the rule is added to. CPU time of this process (``time.process_time``).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import pyarrow as pa
import pyarrow.csv as pa_csv

from mia_bridge.csv_safety import neutralise_table


def table(rows: int, hostile_share: float) -> pa.Table:
    ids = [f"<SN{i:08d}{i * 7919 % 10**9:09d}@SN.namprd05.prod.outlook.com>" for i in range(rows)]
    folders = ["\\Inbox", "\\Sent Items", "\\Archive", "\\Finance"]
    folder = [folders[i % 4] for i in range(rows)]
    hostile = int(rows * hostile_share)
    for i in range(0, rows, max(1, rows // max(hostile, 1))) if hostile else ():
        folder[i] = "=cmd|' /C calc'!A0"
    columns = {
        "record_id": [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(rows)],
        "mailbox": [f"user{i % 400}@contoso.com" for i in range(rows)],
        "folder_path": folder,
        "internet_message_id": ids,
        "internet_message_id_raw": ids,
        "client_ip": [f"203.0.113.{i % 254}" for i in range(rows)],
        "app_id": ["00000003-0000-0000-c000-000000000000"] * rows,
        "client_app_id": [""] * rows,
        "session_id": [f"{i % 977:08x}-aaaa-bbbb-cccc-000000000000" for i in range(rows)],
        "client_info_string": ["Client=REST;Client=RESTSystem;;"] * rows,
        "creation_time": ["2026-10-01T10:00:00Z"] * rows,
    }
    return pa.table({k: pa.array(v, pa.large_string()) for k, v in columns.items()})


def timed(fn: object, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.process_time()
        fn()  # type: ignore[operator]
        samples.append(time.process_time() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_100_000)
    parser.add_argument("--hostile-share", type=float, default=0.001)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    clean, hostile = table(args.rows, 0.0), table(args.rows, args.hostile_share)
    write = timed(lambda: pa_csv.write_csv(clean, io.BytesIO()), args.repeat)
    rule_clean = timed(lambda: neutralise_table(clean), args.repeat)
    rule_hostile = timed(lambda: neutralise_table(hostile), args.repeat)
    print(f"rows {args.rows:,}, 11 text columns; median CPU of {args.repeat} runs")
    print(f"write CSV (pyarrow)                 {write:6.3f} s")
    print(f"neutralise, no formula cell         {rule_clean:6.3f} s  ({rule_clean / write:.0%} of the write)")
    print(f"neutralise, {args.hostile_share:.1%} formula cells      {rule_hostile:6.3f} s  "
          f"({rule_hostile / write:.0%} of the write)")


if __name__ == "__main__":
    main()

"""The SQL tables (contexts, throttled windows, leads; DuckDB, ``analysis/sql``) equal straightforward
per-group versions.

The references below are per-group Python implementations (cost growing with the number of groups, the
way the analysis was first written); random contexts with ties, empty values, several ClientAppIds, items,
synced folders and throttled mailboxes must give identical tables.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from mia_bridge.analysis.engines.embedded import run_statements
from mia_bridge.analysis.leads import MICROSOFT_APP_IDS, SCORES, option_values
from mia_bridge.analysis.normalise import norm_ip
from mia_bridge.analysis.schema import (
    ARROW_SCHEMAS,
    CONTEXT_COLUMNS,
    CONTEXT_KEY,
    LEAD_COLUMNS,
    THROTTLED_WINDOW_COLUMNS,
)
from mia_bridge.analysis.sql import py_repr

T0 = datetime(2024, 5, 1, tzinfo=UTC)
THROTTLE_WINDOW = timedelta(hours=24)
APPS = ["00000003-0000-0000-c000-000000000000", "d3590ed6-52b3-4102-aeff-aad2292ab01c", "bad-app", "other-app", ""]


def _events(rng: random.Random, n: int) -> pd.DataFrame:
    rows = []
    for i in range(n):
        rows.append({
            "record_id": f"r{i}", "creation_time": pd.Timestamp(T0 + timedelta(hours=rng.randrange(24 * 10))),
            "mailbox": rng.choice(["a@x", "b@x", "c@x", None]), "client_ip": rng.choice(["1.1.1.1", "2.2.2.2",
                                                                                          "3.3.3.3", None]),
            "app_id": rng.choice(APPS), "client_info_string": rng.choice(["Client=MSExchangeRPC", "Client=REST", "",
                                                                          "it's \"odd\""]),
            "session_id": rng.choice(["s1", "s2", None]), "mail_access_type": rng.choice(["Bind", "Sync", None]),
            "is_throttled": rng.choice([True, False, False, None]), "client_app_id": rng.choice([*APPS, None]),
        })
    events = pd.DataFrame(rows)
    events["seq"] = range(len(events))  # the events' order: contexts that tie are listed in it
    first: dict[tuple[str, ...], int] = {}  # ctx, as events.sql numbers it: the context's first seq
    events["ctx"] = [first.setdefault(_key(row), row["seq"]) for row in events.to_dict("records")]
    return events


def _items_and_folders(rng: random.Random, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Items of the bind events (repeated ids) and folders of the sync events, with their events' context."""
    items, folders = [], []
    for event in events.to_dict("records"):
        context = {c: event[c] for c in ["record_id", "creation_time", "mailbox", "client_ip", "app_id",
                                         "client_app_id", "session_id", "client_info_string"]}
        if event["mail_access_type"] == "Bind":
            for _ in range(rng.randrange(4)):
                items.append({**context, "seq": event["seq"], "ctx": event["ctx"], "folder_path": "\\Inbox",
                              "internet_message_id": f"m{rng.randrange(30)}@x", "internet_message_id_raw": "",
                              "size_in_bytes": None})
        elif event["mail_access_type"] == "Sync":
            for _ in range(rng.randrange(3)):
                folders.append({**context, "folder_path": rng.choice(["\\Inbox", "\\Sent", None])})
    return (pd.DataFrame(items, columns=[*ARROW_SCHEMAS["items"].names, "seq", "ctx"]),  # the event's, as bind_items
            pd.DataFrame(folders, columns=ARROW_SCHEMAS["synced_folders"].names))


def _arrow(frame: pd.DataFrame, name: str | None = None) -> pa.Table:
    if name is not None:
        return pa.Table.from_pandas(frame, schema=ARROW_SCHEMAS[name], preserve_index=False)
    return pa.Table.from_pandas(frame, preserve_index=False)


def _sql_contexts(events: pd.DataFrame, items: pd.DataFrame, folders: pd.DataFrame) -> dict[str, pd.DataFrame]:
    bind_items = (_arrow(items, "items").append_column("seq", pa.array(items["seq"], pa.int64()))
                  .append_column("ctx", pa.array(items["ctx"], pa.int64())))
    tables = run_statements({"events": _arrow(events), "bind_items": bind_items,
                             "synced_folders": _arrow(folders, "synced_folders")}, ["throttled_windows", "contexts"])
    return {name: table.to_pandas() for name, table in tables.items()}


def _key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple("" if row[c] is None or pd.isna(row[c]) else str(row[c]) for c in CONTEXT_KEY)


def _reference_contexts(events: pd.DataFrame, items: pd.DataFrame, folders: pd.DataFrame) -> pd.DataFrame:
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for number, event in enumerate(events.to_dict("records")):
        group = groups.setdefault(_key(event), {"first": number, "times": [], "bind": 0, "sync": 0, "throttled": 0,
                                                "apps": set(), "items": 0, "ids": set(), "folders": set()})
        group["times"].append(event["creation_time"])
        group["bind"] += event["mail_access_type"] == "Bind"
        group["sync"] += event["mail_access_type"] == "Sync"
        group["throttled"] += event["is_throttled"] is True
        if isinstance(event["client_app_id"], str) and event["client_app_id"]:
            group["apps"].add(event["client_app_id"])
    for item in items.to_dict("records"):
        groups[_key(item)]["items"] += 1
        groups[_key(item)]["ids"].add(item["internet_message_id"])
    for folder in folders.to_dict("records"):
        if isinstance(folder["folder_path"], str):
            groups[_key(folder)]["folders"].add(folder["folder_path"])
    rows = []
    for key, g in groups.items():
        rows.append({**dict(zip(CONTEXT_KEY, key, strict=True)), "first_seen": min(g["times"]),
                     "last_seen": max(g["times"]), "events": len(g["times"]), "bind_events": g["bind"],
                     "sync_events": g["sync"], "throttled_events": g["throttled"], "items_accessed": g["items"],
                     "unique_message_ids": len(g["ids"]), "synced_folders": len(g["folders"]),
                     "client_app_ids": ";".join(sorted(g["apps"])), "_first": g["first"]})
    table = pd.DataFrame(rows).sort_values(["mailbox", "first_seen", "_first"])
    return table[CONTEXT_COLUMNS].reset_index(drop=True)


def _reference_windows(events: pd.DataFrame) -> pd.DataFrame:
    throttled = events.loc[events["is_throttled"].fillna(False).astype(bool), ["mailbox", "creation_time"]]
    rows: list[dict[str, Any]] = []
    for mailbox, group in throttled.groupby(throttled["mailbox"].fillna(""), sort=True):
        start = end = None
        count = 0
        for when in group["creation_time"].sort_values():
            if start is None or when > end:
                if start is not None:
                    rows.append({"mailbox": mailbox, "window_start": start, "window_end": end,
                                 "throttled_events": count})
                start, end, count = when, when + THROTTLE_WINDOW, 0
            else:
                end = max(end, when + THROTTLE_WINDOW)
            count += 1
        if start is not None:
            rows.append({"mailbox": mailbox, "window_start": start, "window_end": end, "throttled_events": count})
    return pd.DataFrame(rows, columns=THROTTLED_WINDOW_COLUMNS)


def _reference_leads(contexts: pd.DataFrame, bad_ips: set[str], bad_apps: set[str], good_ips: set[str],
                     throttled: set[str]) -> pd.DataFrame:
    ip_events = contexts.groupby(["mailbox", "client_ip"])["events"].sum()
    app_events = contexts.groupby(["mailbox", "app_id"])["events"].sum()

    def usual_of(counts: pd.Series) -> dict[str, tuple[str, int]]:
        result: dict[str, tuple[str, int]] = {}
        for key, count in counts.items():
            mailbox, value = str(key[0]), str(key[1])  # type: ignore[index]
            if value and (mailbox not in result or int(count) > result[mailbox][1]):
                result[mailbox] = (value, int(count))
        return result

    usual_ip, usual_app = usual_of(ip_events), usual_of(app_events)

    def rare(counts: pd.Series, usual: dict[str, tuple[str, int]], mailbox: str, value: str) -> bool:
        return mailbox in usual and value != usual[mailbox][0] and int(counts[(mailbox, value)]) < usual[mailbox][1]

    rows = []
    for ctx in contexts.to_dict("records"):
        reasons: list[tuple[str, str]] = []
        ip, app, mailbox = ctx["client_ip"], ctx["app_id"], ctx["mailbox"]
        client_apps = sorted({a for a in str(ctx["client_app_ids"]).split(";") if a})
        if ip and ip in bad_ips:
            reasons.append(("user_suspicious_ip", f"IP {ip} is on the --suspicious-ip list"))
        if (app and app in bad_apps) or set(client_apps) & bad_apps:
            shown = app or ";".join(client_apps)
            reasons.append(("user_suspicious_app", f"app {shown} is on the --suspicious-app list"))
        if ip and ip not in good_ips and rare(ip_events, usual_ip, mailbox, ip):
            reasons.append(("ip_rare_for_mailbox", f"IP {ip} made {int(ip_events[(mailbox, ip)])} of this mailbox's "
                            f"events; its usual IP {usual_ip[mailbox][0]} made {usual_ip[mailbox][1]}"))
        if app and rare(app_events, usual_app, mailbox, app):
            reasons.append(("app_rare_for_mailbox", f"AppId {app} made {int(app_events[(mailbox, app)])} of this "
                            f"mailbox's events; its usual AppId {usual_app[mailbox][0]} made {usual_app[mailbox][1]}"))
        foreign = sorted(a for a in {app, *client_apps} if a and a not in MICROSOFT_APP_IDS)
        if foreign and ctx["items_accessed"] + ctx["sync_events"] > 0:
            reasons.append(("non_microsoft_app", f"app {', '.join(foreign)} is not a known Microsoft first-party app"))
        if ctx["sync_events"]:
            client = ctx["client_info_string"] or "(no client string)"
            if "outlook" not in client.lower() and "msexchangerpc" not in client.lower():
                reasons.append(("sync_unusual_client", f"{ctx['sync_events']} sync event(s) from client {client!r}: "
                                "treat every item in the synced folders as exposed"))
            else:
                reasons.append(("sync_context", f"{ctx['sync_events']} sync event(s): synced folders count as exposed"))
        if ctx["throttled_events"]:
            reasons.append(("throttled_context",
                            f"{ctx['throttled_events']} throttled record(s): 24 h of unaudited access"))
        elif mailbox in throttled:
            reasons.append(("throttled_mailbox", "mailbox was throttled in the period"))
        if ip and ip in good_ips:
            reasons.append(("user_known_good_ip", f"IP {ip} is on the --known-good-ip list"))
        rows.append({"score": sum(SCORES[c] for c, _ in reasons), "mailbox": mailbox, "client_ip": ip,
                     "app_id": app, "client_info_string": ctx["client_info_string"],
                     "session_id": ctx["session_id"], "first_seen": ctx["first_seen"], "last_seen": ctx["last_seen"],
                     "events": ctx["events"], "items_accessed": ctx["items_accessed"],
                     "sync_events": ctx["sync_events"], "reasons": "; ".join(m for _, m in reasons) or "no indicator"})
    leads = pd.DataFrame(rows).sort_values(["score", "items_accessed", "first_seen"], ascending=[False, False, True],
                                           kind="stable")
    leads.insert(0, "rank", range(1, len(leads) + 1))
    return leads[LEAD_COLUMNS].reset_index(drop=True)


def _sql_leads(contexts: pd.DataFrame, bad_ips: set[str], bad_apps: set[str], good_ips: set[str],
               throttled: set[str]) -> pd.DataFrame:
    ctx = contexts.reset_index(drop=True).assign(seq=lambda f: range(len(f)))  # the contexts' order
    values = option_values(suspicious_ips=bad_ips, suspicious_apps=bad_apps, known_good_ips=good_ips)
    relations = {
        "contexts": _arrow(ctx),
        "option_values": pa.table({"list": [v[0] for v in values], "value": [v[1] for v in values]}),
        "throttled_windows": pa.table({"mailbox": pa.array(sorted(throttled), pa.string())}),
    }
    return run_statements(relations, ["leads"])["leads"].to_pandas()[LEAD_COLUMNS]


@pytest.mark.parametrize("seed", range(6))
def test_context_and_window_tables_equal_the_per_group_versions(seed: int) -> None:
    rng = random.Random(seed)
    events = _events(rng, 400)
    items, folders = _items_and_folders(rng, events)
    got = _sql_contexts(events, items, folders)
    contexts = got["contexts"]
    assert list(contexts.columns[:len(CONTEXT_COLUMNS)]) == CONTEXT_COLUMNS
    want = _reference_contexts(events, items, folders)
    assert want["items_accessed"].sum() == len(items) > 0 and want["synced_folders"].sum() > 0
    pd.testing.assert_frame_equal(contexts[CONTEXT_COLUMNS], want, check_dtype=False)
    pd.testing.assert_frame_equal(got["throttled_windows"][THROTTLED_WINDOW_COLUMNS], _reference_windows(events),
                                  check_dtype=False)


@pytest.mark.parametrize("seed", range(6))
def test_leads_equal_the_per_context_version(seed: int) -> None:
    rng = random.Random(seed)
    events = _events(rng, 300)
    contexts = _sql_contexts(events, *_items_and_folders(rng, events))["contexts"][CONTEXT_COLUMNS]
    contexts["items_accessed"] = [rng.choice([0, 0, 3]) for _ in range(len(contexts))]
    contexts["events"] = [rng.choice([1, 2, 2, 5]) for _ in range(len(contexts))]  # ties for the usual IP/app
    bad_ips, bad_apps, good_ips = {"1.1.1.1"}, {"bad-app"}, {"3.3.3.3"}
    throttled = {"b@x"}
    got = _sql_leads(contexts, bad_ips, bad_apps, good_ips, throttled)
    want = _reference_leads(contexts, {norm_ip(i) for i in bad_ips}, bad_apps, {norm_ip(i) for i in good_ips},
                            throttled)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert (got["reasons"] != "no indicator").any() and got["reasons"].str.contains("usual IP").any()
    assert got["reasons"].str.contains("from client 'it\\'s \"odd\"'", regex=False).any()


@pytest.mark.parametrize("text", ["plain", "it's", 'say "hi"', "it's \"odd\"", "back\\slash\ttab\nnew\rline", "",
                                  "\\'\"", "ünïcode ✓"])
def test_the_sql_repr_is_pythons(text: str) -> None:
    got = duckdb.connect().execute(f"SELECT {py_repr('client')} FROM (SELECT ? AS client)", [text]).fetchone()
    assert got is not None and got[0] == repr(text)


def test_a_tie_for_the_usual_ip_is_not_rare() -> None:
    """Two IPs with as many events each: the first in sorted order is usual, the other is not rare."""
    rng = random.Random(1)
    events = _events(rng, 50)
    contexts = _sql_contexts(events, *_items_and_folders(rng, events))["contexts"][CONTEXT_COLUMNS].head(2).copy()
    contexts["mailbox"] = "m@x"
    contexts["client_ip"] = ["9.9.9.2", "9.9.9.1"]
    contexts["app_id"] = "d3590ed6-52b3-4102-aeff-aad2292ab01c"
    contexts["client_app_ids"] = ""
    contexts["events"] = 2
    contexts["sync_events"] = contexts["throttled_events"] = contexts["items_accessed"] = 0
    got = _sql_leads(contexts, set(), set(), set(), set())
    assert got["reasons"].tolist() == ["no indicator", "no indicator"]
    contexts.loc[contexts.index[0], "events"] = 1
    got = _sql_leads(contexts, set(), set(), set(), set())
    assert got["reasons"].tolist() == [
        "IP 9.9.9.2 made 1 of this mailbox's events; its usual IP 9.9.9.1 made 2", "no indicator"]
    pd.testing.assert_frame_equal(got, _reference_leads(contexts, set(), set(), set(), set()), check_dtype=False)

"""The vectorised context, throttled-window and lead tables equal the straightforward per-group versions.

The references below are the per-group Python implementations the analysis used before (cost growing with
the number of groups); random contexts with ties, empty values, several ClientAppIds and throttled
mailboxes must give identical tables.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mia_bridge.analysis.grouped_text import join_distinct
from mia_bridge.analysis.leads import MICROSOFT_APP_IDS, SCORES, rank_leads
from mia_bridge.analysis.mailitemsaccessed import THROTTLE_WINDOW, context_table, throttled_windows
from mia_bridge.analysis.normalise import norm_ip
from mia_bridge.analysis.schema import CONTEXT_COLUMNS, LEAD_COLUMNS, THROTTLED_WINDOW_COLUMNS

T0 = datetime(2024, 5, 1, tzinfo=UTC)
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
    return pd.DataFrame(rows)


def _reference_client_app_ids(events: pd.DataFrame) -> pd.Series:
    keyed = events.assign(**{c: events[c].fillna("").astype(str) for c in
                             ["mailbox", "client_ip", "app_id", "client_info_string", "session_id"]})
    return keyed.groupby(["mailbox", "client_ip", "app_id", "client_info_string", "session_id"], sort=False)[
        "client_app_id"].agg(lambda s: ";".join(sorted({v for v in s.dropna() if v})))


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


@pytest.mark.parametrize("seed", range(6))
def test_context_and_window_tables_equal_the_per_group_versions(seed: int) -> None:
    events = _events(random.Random(seed), 400)
    contexts = context_table(events, pd.DataFrame(), pd.DataFrame())
    assert list(contexts.columns) == CONTEXT_COLUMNS
    reference = _reference_client_app_ids(events)
    by_key = {tuple(k): v for k, v in reference.items()}
    for row in contexts.to_dict("records"):
        key = (row["mailbox"], row["client_ip"], row["app_id"], row["client_info_string"], row["session_id"])
        assert row["client_app_ids"] == by_key[key]
    pd.testing.assert_frame_equal(throttled_windows(events), _reference_windows(events), check_dtype=False)


@pytest.mark.parametrize("seed", range(6))
def test_leads_equal_the_per_context_version(seed: int) -> None:
    rng = random.Random(seed)
    contexts = context_table(_events(rng, 300), pd.DataFrame(), pd.DataFrame())
    contexts["items_accessed"] = [rng.choice([0, 0, 3]) for _ in range(len(contexts))]
    contexts["events"] = [rng.choice([1, 2, 2, 5]) for _ in range(len(contexts))]  # ties for the usual IP/app
    bad_ips, bad_apps, good_ips = {"1.1.1.1"}, {"bad-app"}, {"3.3.3.3"}
    throttled = {"b@x"}
    got = rank_leads(contexts, suspicious_ips=bad_ips, suspicious_apps=bad_apps, known_good_ips=good_ips,
                     throttled_mailboxes=throttled)
    want = _reference_leads(contexts, {norm_ip(i) for i in bad_ips}, bad_apps, {norm_ip(i) for i in good_ips},
                            throttled)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert (got["reasons"] != "no indicator").any() and got["reasons"].str.contains("usual IP").any()


def test_join_distinct_sorts_dedupes_and_skips_empty() -> None:
    values = pd.Series(["b", "a", "b", None, "", "c", "a"])
    groups = np.array([0, 0, 0, 1, 1, 2, 2])
    assert join_distinct(groups, values, 4).tolist() == ["a;b", "", "a;c", ""]


def test_a_tie_for_the_usual_ip_is_not_rare() -> None:
    """Two IPs with as many events each: the first in sorted order is usual, the other is not rare."""
    rng = random.Random(1)
    contexts = context_table(_events(rng, 50), pd.DataFrame(), pd.DataFrame()).head(2).copy()
    contexts["mailbox"] = "m@x"
    contexts["client_ip"] = ["9.9.9.2", "9.9.9.1"]
    contexts["app_id"] = "d3590ed6-52b3-4102-aeff-aad2292ab01c"
    contexts["events"] = 2
    contexts["sync_events"] = contexts["throttled_events"] = contexts["items_accessed"] = 0
    got = rank_leads(contexts)
    assert got["reasons"].tolist() == ["no indicator", "no indicator"]
    contexts.loc[contexts.index[0], "events"] = 1
    got = rank_leads(contexts)
    assert got["reasons"].tolist() == [
        "IP 9.9.9.2 made 1 of this mailbox's events; its usual IP 9.9.9.1 made 2", "no indicator"]
    pd.testing.assert_frame_equal(got, _reference_leads(contexts, set(), set(), set(), set()), check_dtype=False)

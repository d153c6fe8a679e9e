"""Leads: access contexts ranked by suspicion, each with the explicit reasons that scored it.

Heuristics, not verdicts: they tell a responder where to look first. Every point has a written reason.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from mia_bridge.analysis.grouped_text import join_distinct
from mia_bridge.analysis.normalise import norm_ip
from mia_bridge.analysis.schema import LEAD_COLUMNS

# Microsoft first-party application ids commonly seen reading mail (public, well-known ids).
MICROSOFT_APP_IDS = frozenset({
    "00000002-0000-0ff1-ce00-000000000000",  # Office 365 Exchange Online
    "00000003-0000-0000-c000-000000000000",  # Microsoft Graph
    "00000006-0000-0ff1-ce00-000000000000",  # Microsoft Office 365 Portal
    "d3590ed6-52b3-4102-aeff-aad2292ab01c",  # Microsoft Office
    "5d661950-3475-41cd-a2c3-d671a3162bc1",  # Microsoft Outlook (new)
    "27922004-5251-4030-b22d-91ecd9a37ea4",  # Outlook Mobile
    "9199bf20-a13f-4107-85dc-02114787ef48",  # One Outlook Web
    "1fec8e78-bce4-4aaf-ab1b-5451cc387264",  # Microsoft Teams
    "5e3ce6c0-2b1f-4285-8d4b-75ee78787346",  # Microsoft Teams web client
    "13937bba-652e-4c46-b222-3003f4d1ff97",  # Substrate context service
    "82d8ab62-be52-a567-14ea-1616c4ee06c4",  # Outlook / Exchange REST (OWA)
    "fc780465-2017-40d4-a0c5-307022471b92",  # WindowsDefenderATP
    "00000004-0000-0ff1-ce00-000000000000",  # Skype for Business Online
    "497effe9-df71-4043-a8bb-14cf78c4b63b",  # Exchange Admin Center
    "fb78d390-0c51-40cd-8e17-fdbfab77341b",  # Microsoft Exchange REST API Based PowerShell
})

SCORES = {
    "user_suspicious_ip": 50, "user_suspicious_app": 50, "ip_rare_for_mailbox": 20, "app_rare_for_mailbox": 15,
    "non_microsoft_app": 15, "sync_unusual_client": 25, "sync_context": 10, "throttled_context": 15,
    "throttled_mailbox": 5, "user_known_good_ip": -40,
}


def _norm_set(values: Iterable[str], *, ip: bool = False) -> set[str]:
    result = set()
    for value in values:
        cleaned = norm_ip(value) if ip else value.strip().lower()
        if cleaned:
            result.add(cleaned)
    return result


def _usual(contexts: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per (mailbox, value): its events, and the mailbox's usual (most-used non-empty) value and count.

    Ties go to the first value in sorted order. One grouped sum and one idxmax, whatever the number of
    mailboxes."""
    counts = contexts.groupby(["mailbox", column], sort=True)["events"].sum().rename("value_events").reset_index()
    named = counts[counts[column] != ""]
    best = named.loc[named.groupby("mailbox", sort=False)["value_events"].idxmax()]
    best = best.rename(columns={column: "usual", "value_events": "usual_events"})[["mailbox", "usual", "usual_events"]]
    return counts.merge(best, on="mailbox", how="left")


def _rare(contexts: pd.DataFrame, column: str) -> tuple[np.ndarray, pd.DataFrame]:
    """Whether each context's value was seen for its mailbox less than the mailbox's usual one, and the counts."""
    joined = contexts[["mailbox", column]].merge(_usual(contexts, column), on=["mailbox", column], how="left")
    rare = (joined["usual"].notna() & (joined[column] != joined["usual"])
            & (joined["value_events"] < joined["usual_events"])).to_numpy()
    return rare, joined


def _count_text(values: pd.Series) -> pd.Series:
    return values.fillna(0).astype("int64").astype(str)


def rank_leads(
    contexts: pd.DataFrame,
    *,
    suspicious_ips: Iterable[str] = (),
    suspicious_apps: Iterable[str] = (),
    known_good_ips: Iterable[str] = (),
    throttled_mailboxes: Iterable[str] = (),
) -> pd.DataFrame:
    """Every context scored by the reasons that apply to it, best first.

    Each reason is a column computed for all contexts at once (masks and string columns), so the cost does
    not grow with the number of contexts beyond the rows themselves."""
    if contexts.empty:
        return pd.DataFrame(columns=LEAD_COLUMNS)
    bad_ips = _norm_set(suspicious_ips, ip=True)
    bad_apps = _norm_set(suspicious_apps)
    good_ips = _norm_set(known_good_ips, ip=True)
    throttled = set(throttled_mailboxes)
    ctx = contexts.reset_index(drop=True)
    number = np.arange(len(ctx))
    ip = ctx["client_ip"].fillna("").astype(str)
    app = ctx["app_id"].fillna("").astype(str)
    mailbox = ctx["mailbox"].fillna("").astype(str)
    client_app_ids = ctx["client_app_ids"].fillna("").astype(str)
    # every app of a context (its AppId and its ClientAppIds), one row each
    client_apps = client_app_ids.str.split(";").explode()
    apps_long = pd.DataFrame({"ctx": np.r_[number, client_apps.index.to_numpy()],
                              "app": np.r_[app.to_numpy(dtype=object), client_apps.to_numpy(dtype=object)]})
    apps_long = apps_long[apps_long["app"].notna() & (apps_long["app"] != "")]
    client_long = apps_long[apps_long.index >= len(number)]  # the ClientAppIds rows (after the AppIds)

    reasons: list[tuple[str, np.ndarray, pd.Series]] = []  # (code, applies, message)

    def add(code: str, applies: np.ndarray, message: pd.Series | str) -> None:
        reasons.append((code, np.asarray(applies, dtype=bool),
                        message if isinstance(message, pd.Series) else pd.Series(message, index=ctx.index)))

    add("user_suspicious_ip", ((ip != "") & ip.isin(bad_ips)).to_numpy(),
        "IP " + ip + " is on the --suspicious-ip list")
    client_bad = np.zeros(len(ctx), dtype=bool)
    client_bad[client_long.loc[client_long["app"].isin(bad_apps), "ctx"].to_numpy(dtype=np.int64)] = True
    shown = app.where(app != "", client_app_ids)
    add("user_suspicious_app", ((app != "") & app.isin(bad_apps)).to_numpy() | client_bad,
        "app " + shown + " is on the --suspicious-app list")
    ip_rare, ip_counts = _rare(ctx.assign(client_ip=ip, mailbox=mailbox), "client_ip")
    add("ip_rare_for_mailbox", ((ip != "") & ~ip.isin(good_ips)).to_numpy() & ip_rare,
        "IP " + ip + " made " + _count_text(ip_counts["value_events"]) + " of this mailbox's events; its usual IP "
        + ip_counts["usual"].fillna("") + " made " + _count_text(ip_counts["usual_events"]))
    app_rare, app_counts = _rare(ctx.assign(app_id=app, mailbox=mailbox), "app_id")
    add("app_rare_for_mailbox", (app != "").to_numpy() & app_rare,
        "AppId " + app + " made " + _count_text(app_counts["value_events"]) + " of this mailbox's events; its usual "
        "AppId " + app_counts["usual"].fillna("") + " made " + _count_text(app_counts["usual_events"]))
    foreign_long = apps_long[~apps_long["app"].isin(MICROSOFT_APP_IDS)]
    foreign = pd.Series(join_distinct(foreign_long["ctx"].to_numpy(dtype=np.int64), foreign_long["app"], len(ctx),
                                      ", "), index=ctx.index)
    reached = (ctx["items_accessed"] + ctx["sync_events"]).to_numpy() > 0
    add("non_microsoft_app", (foreign != "").to_numpy() & reached,
        "app " + foreign + " is not a known Microsoft first-party app")
    syncs = ctx["sync_events"].fillna(0).astype("int64")
    client = ctx["client_info_string"].fillna("").astype(str)
    client = client.where(client != "", "(no client string)")
    lowered = client.str.lower()
    usual_client = lowered.str.contains("outlook", regex=False) | lowered.str.contains("msexchangerpc", regex=False)
    codes, uniques = pd.factorize(client)
    quoted = pd.Series(np.asarray([repr(text) for text in uniques], dtype=object)[codes], index=ctx.index)
    add("sync_unusual_client", (syncs > 0).to_numpy() & ~usual_client.to_numpy(),
        syncs.astype(str) + " sync event(s) from client " + quoted
        + ": treat every item in the synced folders as exposed")
    add("sync_context", (syncs > 0).to_numpy() & usual_client.to_numpy(),
        syncs.astype(str) + " sync event(s): synced folders count as exposed")
    throttled_events = ctx["throttled_events"].fillna(0).astype("int64")
    add("throttled_context", (throttled_events > 0).to_numpy(),
        throttled_events.astype(str) + " throttled record(s): 24 h of unaudited access")
    add("throttled_mailbox", (throttled_events == 0).to_numpy() & mailbox.isin(throttled).to_numpy(),
        "mailbox was throttled in the period")
    add("user_known_good_ip", ((ip != "") & ip.isin(good_ips)).to_numpy(),
        "IP " + ip + " is on the --known-good-ip list")

    score = np.zeros(len(ctx), dtype=np.int64)
    joined = np.full(len(ctx), "", dtype=object)
    for code, applies, message in reasons:
        score += np.where(applies, SCORES[code], 0)
        joined = joined + np.where(applies, message.to_numpy(dtype=object) + "; ", "")
    text = pd.Series(joined, index=ctx.index, dtype=object)
    text = text.str[:-2].where(text != "", "no indicator")
    leads = pd.DataFrame({
        "score": score, "mailbox": mailbox, "client_ip": ip, "app_id": app,
        "client_info_string": ctx["client_info_string"], "session_id": ctx["session_id"],
        "first_seen": ctx["first_seen"], "last_seen": ctx["last_seen"], "events": ctx["events"],
        "items_accessed": ctx["items_accessed"], "sync_events": ctx["sync_events"], "reasons": text,
    })
    leads = leads.sort_values(["score", "items_accessed", "first_seen"], ascending=[False, False, True],
                              kind="stable")
    leads.insert(0, "rank", range(1, len(leads) + 1))
    return leads[LEAD_COLUMNS].reset_index(drop=True)

"""Leads: access contexts ranked by suspicion, each with the explicit reasons that scored it.

Heuristics, not verdicts: they tell a responder where to look first. Every point has a written reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

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


def _usual(counts: pd.Series) -> dict[str, tuple[str, int]]:
    """mailbox → (most-used value, its event count)."""
    result: dict[str, tuple[str, int]] = {}
    for key, count in counts.items():
        mailbox, value = str(key[0]), str(key[1])  # type: ignore[index]
        if value and (mailbox not in result or int(count) > result[mailbox][1]):
            result[mailbox] = (value, int(count))
    return result


def _is_rare(counts: pd.Series, usual: dict[str, tuple[str, int]], mailbox: str, value: str) -> bool:
    """Seen for this mailbox less than its usual value (and the mailbox has more than one)."""
    if mailbox not in usual:
        return False
    usual_value, usual_count = usual[mailbox]
    return value != usual_value and int(counts[(mailbox, value)]) < usual_count


def rank_leads(
    contexts: pd.DataFrame,
    *,
    suspicious_ips: Iterable[str] = (),
    suspicious_apps: Iterable[str] = (),
    known_good_ips: Iterable[str] = (),
    throttled_mailboxes: Iterable[str] = (),
) -> pd.DataFrame:
    if contexts.empty:
        return pd.DataFrame(columns=LEAD_COLUMNS)
    bad_ips = _norm_set(suspicious_ips, ip=True)
    bad_apps = _norm_set(suspicious_apps)
    good_ips = _norm_set(known_good_ips, ip=True)
    throttled = set(throttled_mailboxes)
    # Per mailbox: events per IP and per app; the most-used one is the mailbox's usual IP/app.
    ip_events = contexts.groupby(["mailbox", "client_ip"])["events"].sum()
    app_events = contexts.groupby(["mailbox", "app_id"])["events"].sum()
    usual_ip = _usual(ip_events)
    usual_app = _usual(app_events)
    rows = []
    records: list[dict[str, Any]] = [{str(k): v for k, v in r.items()} for r in contexts.to_dict("records")]
    for ctx in records:
        reasons: list[tuple[str, str]] = []
        ip, app, mailbox = ctx["client_ip"], ctx["app_id"], ctx["mailbox"]
        client_apps = {a for a in str(ctx["client_app_ids"]).split(";") if a}
        if ip and ip in bad_ips:
            reasons.append(("user_suspicious_ip", f"IP {ip} is on the --suspicious-ip list"))
        if (app and app in bad_apps) or client_apps & bad_apps:
            shown = app or ";".join(client_apps)
            reasons.append(("user_suspicious_app", f"app {shown} is on the --suspicious-app list"))
        if ip and ip not in good_ips and _is_rare(ip_events, usual_ip, mailbox, ip):
            usual, usual_count = usual_ip[mailbox]
            reasons.append(("ip_rare_for_mailbox", f"IP {ip} made {int(ip_events[(mailbox, ip)])} of this mailbox's "
                            f"events; its usual IP {usual} made {usual_count}"))
        if app and _is_rare(app_events, usual_app, mailbox, app):
            usual, usual_count = usual_app[mailbox]
            reasons.append(("app_rare_for_mailbox", f"AppId {app} made {int(app_events[(mailbox, app)])} of this "
                            f"mailbox's events; its usual AppId {usual} made {usual_count}"))
        foreign = sorted(a for a in {app, *client_apps} if a and a not in MICROSOFT_APP_IDS)
        if foreign and ctx["items_accessed"] + ctx["sync_events"] > 0:
            reasons.append(("non_microsoft_app", f"app {', '.join(foreign)} is not a known Microsoft first-party app"))
        if ctx["sync_events"]:
            client = ctx["client_info_string"] or "(no client string)"
            syncs = ctx["sync_events"]
            if "outlook" not in client.lower() and "msexchangerpc" not in client.lower():
                reasons.append(("sync_unusual_client", f"{syncs} sync event(s) from client {client!r}: "
                                "treat every item in the synced folders as exposed"))
            else:
                reasons.append(("sync_context", f"{syncs} sync event(s): synced folders count as exposed"))
        if ctx["throttled_events"]:
            count = ctx["throttled_events"]
            reasons.append(("throttled_context", f"{count} throttled record(s): 24 h of unaudited access"))
        elif mailbox in throttled:
            reasons.append(("throttled_mailbox", "mailbox was throttled in the period"))
        if ip and ip in good_ips:
            reasons.append(("user_known_good_ip", f"IP {ip} is on the --known-good-ip list"))
        score = sum(SCORES[code] for code, _ in reasons)
        rows.append({
            "score": score, "mailbox": mailbox, "client_ip": ip, "app_id": app,
            "client_info_string": ctx["client_info_string"], "session_id": ctx["session_id"],
            "first_seen": ctx["first_seen"], "last_seen": ctx["last_seen"], "events": ctx["events"],
            "items_accessed": ctx["items_accessed"], "sync_events": ctx["sync_events"],
            "reasons": "; ".join(message for _, message in reasons) or "no indicator",
        })
    leads = pd.DataFrame(rows).sort_values(["score", "items_accessed", "first_seen"], ascending=[False, False, True],
                                           kind="stable")
    leads.insert(0, "rank", range(1, len(leads) + 1))
    return leads[LEAD_COLUMNS].reset_index(drop=True)

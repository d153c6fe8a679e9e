"""Leads: access contexts ranked by suspicion, each with the explicit reasons that scored it (the ranking
itself is ``sql/leads.sql``; here are its constants and the normalised user lists it is given).

Heuristics, not verdicts: they tell a responder where to look first. Every point has a written reason.
"""

from __future__ import annotations

from collections.abc import Iterable

from mia_bridge.analysis.normalise import norm_ip

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


def option_values(*, suspicious_ips: Iterable[str] = (), suspicious_apps: Iterable[str] = (),
                  known_good_ips: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The ``option_values`` relation of the lead statement (``sql/leads.sql``): the user's lists, normalised,
    and the Microsoft first-party AppIds, as (list, value) rows."""
    rows = [("suspicious_ip", v) for v in sorted(_norm_set(suspicious_ips, ip=True))]
    rows += [("suspicious_app", v) for v in sorted(_norm_set(suspicious_apps))]
    rows += [("known_good_ip", v) for v in sorted(_norm_set(known_good_ips, ip=True))]
    rows += [("microsoft_app", v) for v in sorted(MICROSOFT_APP_IDS)]
    return rows

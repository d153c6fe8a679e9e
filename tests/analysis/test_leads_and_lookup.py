"""Leads with explicit reasons, and the --message-ids lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
from mia_builders import folder, mia

from mia_bridge.analysis.api import AnalysisOptions, analyze_records
from mia_bridge.analysis.message_lookup import read_message_ids
from mia_bridge.errors import UsageError

GRAPH = "00000003-0000-0000-c000-000000000000"
ROGUE = "5a95e683-08ad-424e-a441-1d1aec52c02c"


def _scenario() -> list[dict[str, object]]:
    owner = [mia(f"2024-05-0{d}T09:00:00", folders=[folder("\\Inbox", f"<own{d}@x>")]) for d in range(1, 4)]
    attacker_bind = mia("2024-05-02T03:00:00", ip="203.0.113.66", app=GRAPH, ClientAppId=ROGUE, session=None,
                        client="Client=REST;Client=RESTSystem;;",
                        folders=[folder("\\Inbox", "<Secret@X>", "<own1@x>"), folder("\\Finance", "<Budget@x>")])
    attacker_sync = mia("2024-05-02T03:10:00", access="Sync", ip="203.0.113.66", session="s-evil",
                        client="Client=WebServices;Action=Sync", folders=[folder("\\Finance")])
    other = mia("2024-05-02T05:00:00", mailbox="bob@contoso.example", throttled="True",
                folders=[folder("\\Inbox", "<bob1@x>")])
    return [*owner, attacker_bind, attacker_sync, other]


def test_leads_rank_attacker_contexts_first_with_reasons() -> None:
    result = analyze_records(_scenario(), AnalysisOptions(), source="t")
    leads = result.leads
    top_two = leads.head(2)
    assert set(top_two["client_ip"]) == {"203.0.113.66"}
    bind_lead = top_two[top_two["app_id"] == GRAPH].iloc[0]
    assert "IP 203.0.113.66 made 2 of this mailbox's events; its usual IP 198.51.100.7 made 3" in bind_lead["reasons"]
    assert f"app {ROGUE} is not a known Microsoft first-party app" in bind_lead["reasons"]
    sync_lead = top_two[top_two["sync_events"] == 1].iloc[0]
    assert "sync event(s) from client 'Client=WebServices;Action=Sync'" in sync_lead["reasons"]
    bob = leads[leads["mailbox"] == "bob@contoso.example"].iloc[0]
    assert "throttled record(s): 24 h of unaudited access" in bob["reasons"]
    owner = leads[(leads["client_ip"] == "198.51.100.7") & (leads["mailbox"] == "victim@contoso.example")].iloc[0]
    assert owner["reasons"] == "no indicator" and owner["score"] == 0
    assert list(leads["rank"]) == list(range(1, len(leads) + 1))


def test_user_lists_raise_and_lower_scores() -> None:
    base = analyze_records(_scenario(), AnalysisOptions(), source="t").leads
    tuned = analyze_records(
        _scenario(), AnalysisOptions(suspicious_ips=["198.51.100.7:443"], known_good_ips=["203.0.113.66"],
                                     suspicious_apps=[ROGUE.upper()]), source="t").leads
    owner_before = base[(base["client_ip"] == "198.51.100.7") & (base["mailbox"] == "victim@contoso.example")]
    owner_after = tuned[(tuned["client_ip"] == "198.51.100.7") & (tuned["mailbox"] == "victim@contoso.example")].iloc[0]
    assert owner_after["score"] == owner_before.iloc[0]["score"] + 50
    assert "is on the --suspicious-ip list" in owner_after["reasons"]
    attacker = tuned[(tuned["client_ip"] == "203.0.113.66") & (tuned["app_id"] == GRAPH)].iloc[0]
    assert "is on the --known-good-ip list" in attacker["reasons"]
    assert "is on the --suspicious-app list" in attacker["reasons"]


def test_message_lookup_statuses(tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    lines = ["# sensitive", "<SECRET@x>", "budget@X", "", "victim@contoso.example,<never@x>",
             "nobody@contoso.example\tnever@x"]
    ids.write_text("\n".join(lines) + "\n", encoding="utf-8")
    entries = read_message_ids(ids)
    assert len(entries) == 4
    result = analyze_records(_scenario(), AnalysisOptions(message_ids=entries), source="t")
    table = result.message_lookup
    assert table is not None
    rows = table.set_index("requested_as")
    secret = rows.loc["<SECRET@x>"]
    assert secret["status"] == "accessed" and secret["accesses"] == 1
    assert secret["client_ips"] == "203.0.113.66" and secret["app_ids"] == GRAPH
    assert rows.loc["budget@X", "status"] == "accessed"
    # Not bound, but the victim's mailbox was synced: possibly exposed.
    never = rows.loc["victim@contoso.example,<never@x>"]
    assert never["status"] == "possibly_exposed"
    assert "mailbox victim@contoso.example was synced" in never["exposure_reasons"]
    assert rows.loc["nobody@contoso.example\tnever@x", "status"] == "not_seen"
    assert result.summary["message_lookup"] == {"accessed": 2, "possibly_exposed": 1, "not_seen": 1}


def test_empty_message_id_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("# nothing\n\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"ids\.txt"):
        read_message_ids(path)

"""Proof against the simulated compromised tenant, through pypsrp's real client and the project's PSRP server:
every message the attacker read has the correct sender and recipients, affected parties equal the ground
truth, mail older than 90 days needs the opt-in flag, message trace's rate is respected, and counts
reconcile (every exposed id is in exposed_messages.csv exactly once)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from enrich_simdata import NOW, VirtualClock, offline_case, run_enrich, tenant_days_ago

from mia_bridge.collect.retry import RetryPolicy
from mia_bridge.enrich.mailbox_metadata import SELECT
from mia_bridge.enrich.message_trace import TraceSettings
from mia_bridge.enrich.model import ACCESSED, NOTE_NOT_IN_TRACE, NOTE_OLDER, POTENTIAL, normalise_id
from mia_bridge.enrich.potential import MAILBOX_AS_NOW
from mia_bridge.enrich.scope import load_scope
from mia_bridge.evidence import verify_case
from mia_bridge.sim.handlers.graph_messages import folder_id
from mia_bridge.sim.mailflow import NESTED_FOLDERS, MailFlow, mailflow_of, truth_affected_parties
from mia_bridge.sim.tenant import Tenant


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _truth_keys(tenant: Tenant) -> set[str]:
    assert tenant.truth is not None
    return {normalise_id(m) for m in tenant.truth.read_message_ids}


@pytest.fixture(scope="module")
def recent() -> Tenant:
    return tenant_days_ago(40)  # everything within message trace's 90 days


def test_every_read_message_has_its_true_sender_and_recipients(recent: Tenant, tmp_path: Path) -> None:
    run = run_enrich(recent, offline_case(recent, tmp_path), allow_mailbox_metadata=True)
    flow = mailflow_of(recent)
    accessed = run.result.accessed
    assert {m.key for m in accessed} == _truth_keys(recent)
    for message in accessed:
        truth = flow.get(message.key)
        assert truth is not None and message.meta is not None, message.internet_message_id
        assert message.meta.sender == truth.sender
        assert set(message.meta.recipients) == set(truth.recipients)
        assert message.meta.subject == truth.subject
        # transport knows what went through it; the mailbox (opt-in) the rest
        expected = "message_trace_v2" if truth.transported else "mailbox_graph"
        assert message.meta.source == expected
    assert any(m.meta and m.meta.source == "mailbox_graph" for m in accessed)  # the scenario has such mail
    # the CSV: one row per exposed id, exactly once; accessed rows are exactly the attacker's reads
    rows = _csv(tmp_path / "exposed_messages.csv")
    counts = Counter(normalise_id(r["internet_message_id"]) for r in rows)
    assert max(counts.values()) == 1
    assert {normalise_id(r["internet_message_id"]) for r in rows if r["exposure"] == ACCESSED} == _truth_keys(recent)
    for row in rows:
        if row["exposure"] == ACCESSED:
            truth = flow.get(row["internet_message_id"])
            assert truth is not None
            assert row["sender"] == truth.sender
            assert set(filter(None, ";".join((row["to"], row["cc"], row["bcc"])).split(";"))) == set(truth.recipients)
            assert row["first_access"] and row["contexts"]
    summary = run.result.summary["counts"]
    assert summary["accessed_ids"] == summary["accessed_rows"] == len(_truth_keys(recent))
    assert summary["accessed_with_metadata"] + summary["accessed_without_metadata"] == summary["accessed_ids"]
    # the Graph calls selected metadata only, never a body
    graph_calls = [params for name, params in run.calls if name.lower() == "get-mgusermessage"]
    assert graph_calls
    for params in graph_calls:
        assert {p.lower() for p in params["Property"]} <= {s.lower() for s in (*SELECT, "parentFolderId")}
        assert not {"body", "bodypreview", "uniquebody"} & {p.lower() for p in params["Property"]}
    assert verify_case(tmp_path).ok


def test_affected_parties_equal_the_ground_truth(recent: Tenant, tmp_path: Path) -> None:
    run = run_enrich(recent, offline_case(recent, tmp_path), allow_mailbox_metadata=True)
    rows = _csv(tmp_path / "affected_parties.csv")
    addresses = {r["party"] for r in rows if r["party_type"] == "address" and int(r["accessed_messages"]) > 0}
    assert addresses == truth_affected_parties(recent)
    flow = mailflow_of(recent)
    # per-address counts match the truth's messages
    read = [flow.get(m) for m in _truth_keys(recent)]
    for row in rows:
        if row["party_type"] != "address":
            continue
        address = row["party"]
        assert int(row["accessed_messages"]) == sum(1 for m in read if m and address in m.parties)
        assert int(row["as_sender"]) >= sum(1 for m in read if m and m.sender == address)
    domains = {r["party"] for r in rows if r["party_type"] == "external_domain"}
    internal = run.result.summary["scope"]
    assert internal  # summary present
    assert domains and all(not d.endswith("contoso.com") for d in domains)


def test_without_the_flag_mail_outside_transport_is_listed_with_the_reason(recent: Tenant, tmp_path: Path) -> None:
    run = run_enrich(recent, offline_case(recent, tmp_path))
    flow = mailflow_of(recent)
    assert {m.key for m in run.result.accessed} == _truth_keys(recent)
    for message in run.result.accessed:
        truth = flow.get(message.key)
        assert truth is not None
        if truth.transported:
            assert message.meta is not None and message.meta.sender == truth.sender
        else:
            assert message.meta is None
            assert message.note == NOTE_NOT_IN_TRACE
    assert not any(name.lower() == "get-mgusermessage" for name, _ in run.calls)  # opt-in only
    assert run.result.summary["mailbox_metadata"]["hint"]


def test_mail_older_than_90_days_only_with_the_opt_in_flag(tmp_path: Path) -> None:
    old = tenant_days_ago(130)  # the attack happened ~112 days ago
    case = offline_case(old, tmp_path / "case")
    run = run_enrich(old, case)
    accessed = run.result.accessed
    assert {m.key for m in accessed} == _truth_keys(old)
    assert all(m.meta is None and m.note == NOTE_OLDER for m in accessed)
    rows = _csv(case / "exposed_messages.csv")
    assert all(r["metadata_source"] == "none" and r["metadata_note"] == NOTE_OLDER
               for r in rows if r["exposure"] == ACCESSED)
    # message trace was never asked beyond its reach (the service would refuse)
    for name, params in run.calls:
        if name == "Get-MessageTraceV2":
            assert params["StartDate"] >= NOW - TraceSettings().reach
    again = run_enrich(old, case, allow_mailbox_metadata=True)
    flow = mailflow_of(old)
    for message in again.result.accessed:
        truth = flow.get(message.key)
        assert truth is not None and message.meta is not None
        assert message.meta.source == "mailbox_graph"
        assert (message.meta.sender, set(message.meta.recipients)) == (truth.sender, set(truth.recipients))
    parties = {r["party"] for r in _csv(case / "affected_parties.csv")
               if r["party_type"] == "address" and int(r["accessed_messages"]) > 0}
    assert parties == truth_affected_parties(old)


def test_message_trace_rate_stays_under_the_documented_limit(tmp_path: Path) -> None:
    tenant = tenant_days_ago(40, seed=11)
    clock = VirtualClock()
    run = run_enrich(tenant, offline_case(tenant, tmp_path), clock, trace=TraceSettings(batch_size=1))
    times = sorted(entry["t"] for entry in run.result.query_log)
    assert len(times) > 100  # enough queries that an unlimited client would exceed the rate
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t - start < 300)
        assert in_window <= 100, f"{in_window} queries in 5 minutes from t={start}"
    flow: MailFlow = mailflow_of(tenant)
    assert flow.throttled == 0  # the service never had to throttle us
    assert run.result.summary["message_trace"]["rate_limit_waits"] > 0
    assert clock.slept  # the limiter waited (virtual time)
    query_log = tmp_path / "enrich" / "message_trace_queries.jsonl"
    assert len(query_log.read_text(encoding="utf-8").splitlines()) == len(times)


def test_service_throttling_is_retried_through_the_collectors_policy(tmp_path: Path) -> None:
    tenant = tenant_days_ago(40, seed=12)
    flow = mailflow_of(tenant)
    flow.rate_limit = 5  # a stricter service than our limiter assumes
    clock = VirtualClock()
    retry = RetryPolicy(attempts=8, base_s=30.0, cap_s=300.0, sleep=clock.sleep)
    run = run_enrich(tenant, offline_case(tenant, tmp_path), clock, trace=TraceSettings(batch_size=10), retry=retry)
    assert flow.throttled > 0
    assert run.result.summary["message_trace"]["retries"] > 0
    assert {m.key for m in run.result.accessed if m.meta} >= {
        m.key for m in run.result.accessed if (t := flow.get(m.key)) and t.transported
    }


def test_paging_past_the_result_size_loses_nothing(recent: Tenant, tmp_path: Path) -> None:
    whole = run_enrich(recent, offline_case(recent, tmp_path / "a"))
    paged = run_enrich(recent, offline_case(recent, tmp_path / "b"), trace=TraceSettings(result_size=3))
    pages = [e for e in paged.result.query_log if e["page"] > 1]
    assert pages  # the small cap forced -EndDate/-StartingRecipientAddress paging
    assert any("StartingRecipientAddress" in params for name, params in paged.calls if name == "Get-MessageTraceV2")

    def view(run: object) -> dict[str, tuple[str, str, tuple[str, ...]]]:
        msgs = run.result.messages  # type: ignore[attr-defined]
        return {m.key: (m.exposure, m.meta.sender if m.meta else "", tuple(sorted(m.meta.recipients)) if m.meta
                        else ()) for m in msgs}

    assert view(paged) == view(whole)


def test_falls_back_to_get_messagetrace_when_v2_is_absent(tmp_path: Path) -> None:
    tenant = tenant_days_ago(25, seed=13)  # attack ~7 days ago: within the old cmdlet's 10 days, mostly
    mailflow_of(tenant).v2_available = False
    run = run_enrich(tenant, offline_case(tenant, tmp_path))
    names = {name for name, _ in run.calls}
    assert "Get-MessageTrace" in names
    assert run.result.summary["message_trace"]["cmdlet"] == "Get-MessageTrace"
    assert run.result.summary["message_trace"]["reach_days"] == 10
    flow = mailflow_of(tenant)
    found = [m for m in run.result.accessed if m.meta]
    assert found and all(m.meta and m.meta.source == "message_trace" for m in found)
    horizon = NOW - TraceSettings().legacy_reach
    for message in run.result.accessed:
        truth = flow.get(message.key)
        assert truth is not None
        if truth.transported and truth.received > horizon and message.meta is None:
            pytest.fail(f"{message.key} was in reach but not found")


def test_potentially_exposed_mail_of_synced_folders_and_throttled_window(recent: Tenant, tmp_path: Path) -> None:
    run = run_enrich(recent, offline_case(recent, tmp_path))
    truth = recent.truth
    assert truth is not None and truth.throttled_at is not None
    potential = run.result.potential
    assert potential
    accessed = {m.key for m in run.result.accessed}
    flow = mailflow_of(recent)
    victim = truth.victims[0]
    for message in potential:
        assert message.key not in accessed and message.reasons and message.meta is not None
        held = flow.get(message.key)
        assert held is not None and victim in held.parties
        assert any("synced" in r or "throttled" in r for r in message.reasons)
    # every transported message delivered to the victim before the throttled window ended is listed
    listed = {m.key for m in potential} | accessed
    windows = run.result.summary["scope"]["throttled_windows"]
    assert windows == 1
    expected = {
        m.key for m in flow.messages.values()
        if m.transported and victim in m.recipients and m.received < truth.throttled_at
        and m.received > NOW - TraceSettings().reach
    }
    assert expected <= listed
    rows = _csv(tmp_path / "exposed_messages.csv")
    assert sum(1 for r in rows if r["exposure"] == POTENTIAL) == len(potential)


def test_redaction_removes_subjects_and_addresses_from_every_output(recent: Tenant, tmp_path: Path) -> None:
    case = offline_case(recent, tmp_path)
    run = run_enrich(recent, case, allow_mailbox_metadata=True, redact_subjects=True, hash_addresses=True)
    flow = mailflow_of(recent)
    listed = [flow.get(m.key) for m in run.result.messages]
    subjects = {m.subject for m in listed if m}
    addresses = {a for m in listed if m for a in m.parties}
    internal = run.result.summary["scope"]["internal_domains"]
    domains = {a.rsplit("@", 1)[1] for a in addresses} - set(internal)  # external domains: their own rows
    assert subjects and addresses
    outputs = run.result.files
    assert {p.name for p in outputs} >= {"exposed_messages.csv", "affected_parties.csv", "summary.json",
                                         "message_trace_queries.jsonl"}
    for path in outputs:
        text = path.read_text(encoding="utf-8").lower()
        leaked = [s for s in subjects if s.lower() in text] + [a for a in addresses | domains if a in text]
        assert not leaked, f"{path.name} leaks {leaked[:3]}"
    rows = _csv(case / "exposed_messages.csv")
    assert all(r["subject"] in ("", "[redacted]") for r in rows)
    assert all(r["sender"].startswith("addr-") for r in rows if r["metadata_source"] != "none")
    # the same address gets the same pseudonym in both files (keyed, so joinable; not reversible without the key)
    party_names = {r["party"] for r in _csv(case / "affected_parties.csv")}
    assert {r["sender"] for r in rows if r["sender"]} <= party_names
    # the raw tenant answers stay as received: evidence, registered in the manifest, not an output to share
    raw = case / "enrich" / "raw" / "message_trace.jsonl"
    assert raw.exists()
    manifest = json.loads((case / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["files"]["enrich/raw/message_trace.jsonl"]["kind"] == "evidence-enrich"


def test_missing_permission_lists_ids_without_metadata(tmp_path: Path) -> None:
    tenant = tenant_days_ago(40, seed=14)
    mailflow_of(tenant).trace_denied = True
    run = run_enrich(tenant, offline_case(tenant, tmp_path))
    assert run.result.trace_unavailable and "permission denied" in run.result.trace_unavailable
    assert {m.key for m in run.result.accessed} == _truth_keys(tenant)
    assert all(m.meta is None and m.note.startswith("no metadata (message trace unavailable") for m in
               run.result.accessed)
    assert len(run.result.query_log) == 1  # a denial is not retried


def test_mailbox_lists_what_syncs_and_throttling_exposed_beyond_trace(tmp_path: Path) -> None:
    old = tenant_days_ago(130, seed=9)
    truth = old.truth
    assert truth is not None and truth.throttled_at is not None
    case = offline_case(old, tmp_path)
    without = run_enrich(old, case)
    assert without.result.potential == []  # message trace no longer reaches that far
    run = run_enrich(old, case, allow_mailbox_metadata=True)
    flow = mailflow_of(old)
    victim = truth.victims[0]
    accessed = {m.key for m in run.result.accessed}
    window_end = max(w.end for w in load_scope(case).throttled)
    expected = {m.key for m in flow.in_mailbox(victim) if m.received < window_end} - accessed
    potential = {m.key: m for m in run.result.potential}
    assert set(potential) == expected
    for key, message in potential.items():
        held = flow.get(key)
        assert held is not None and message.meta is not None and message.meta.source == "mailbox_graph"
        assert message.meta.sender == held.sender
        assert message.folders == {held.folder}  # the path as audit records spell it, child folders too
        synced = [r for r in message.reasons if "synced" in r]
        # a sync exposes only its own folder: Archive was never synced, only throttled
        if held.folder == "\\Archive":
            assert not synced
        elif held.folder in truth.synced_folders and held.received < truth.throttled_at:
            assert synced and all(held.folder in r for r in synced)


def test_mailbox_listing_walks_child_folders(tmp_path: Path) -> None:
    """Mail filed in subfolders (\\Inbox\\Projects, \\Inbox\\Projects\\Falcon) is listed by the throttled window
    with its folder path (Graph lists top-level folders only: the child folders are walked), is not put down
    to the Inbox's sync (a sync covers its own folder), and says the listing is the mailbox as it is now."""
    old = tenant_days_ago(130, seed=9)
    truth = old.truth
    assert truth is not None and truth.throttled_at is not None
    case = offline_case(old, tmp_path)
    run = run_enrich(old, case, allow_mailbox_metadata=True)
    flow = mailflow_of(old)
    victim = truth.victims[0]
    nested = [m for m in flow.in_mailbox(victim) if m.folder in NESTED_FOLDERS]
    assert {m.folder for m in nested} == set(NESTED_FOLDERS)  # the scenario has mail two levels down
    assert not set(NESTED_FOLDERS) & set(truth.synced_folders)
    potential = {m.key: m for m in run.result.potential}
    for held in nested:
        message = potential[held.key]  # received before the throttled window: potentially exposed
        assert message.folders == {held.folder}
        assert message.reasons and all("throttled" in r for r in message.reasons), message.reasons
        assert message.note == MAILBOX_AS_NOW
    walked = [params["MailFolderId"] for name, params in run.calls if name == "Get-MgUserMailFolderChildFolder"]
    assert folder_id("\\Inbox") in walked and folder_id("\\Inbox\\Projects") in walked
    assert folder_id("\\Sent Items") not in walked  # no children: not asked (childFolderCount)
    rows = {normalise_id(r["internet_message_id"]): r for r in _csv(case / "exposed_messages.csv")}
    assert all(rows[m.key]["folders"] == m.folder and rows[m.key]["metadata_note"] == MAILBOX_AS_NOW for m in nested)
    assert "as it is now" in (run.result.summary["mailbox_metadata"]["potential_listing"] or "")

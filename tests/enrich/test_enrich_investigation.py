"""Enrichment of a case written by ``mia investigate`` (the step the pipeline runs): the same connection,
its findings and directory, the attacker's reads with their true parties, and a case that still verifies."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from enrich_simdata import NOW, VirtualClock, tenant_days_ago

from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.collect.engine import CollectOptions
from mia_bridge.enrich.api import EnrichOptions
from mia_bridge.evidence import verify_case
from mia_bridge.investigate.enrich_step import STEP_NAME, run_enrich_step
from mia_bridge.investigate.pipeline import InvestigateOptions, run_investigation
from mia_bridge.investigate.steps import StepLog, StepOutcome, StepStatus
from mia_bridge.sim.backend import sim_session
from mia_bridge.sim.mailflow import mailflow_of, truth_affected_parties


@dataclass
class QuietUI:
    outcomes: list[StepOutcome] = field(default_factory=list)
    progress: Any = None

    def confirm(self, question: str) -> bool:
        return True

    def outcome(self, outcome: StepOutcome) -> None:
        self.outcomes.append(outcome)

    def note(self, text: str) -> None:
        pass


def test_enrich_step_on_an_investigated_case(tmp_path: Path) -> None:
    tenant = tenant_days_ago(40, seed=31)
    truth = tenant.truth
    assert truth is not None
    start = NOW - timedelta(days=40)
    options = InvestigateOptions(tenant="contoso.onmicrosoft.com", out_dir=tmp_path / "case", start=start,
                                 end=start + timedelta(days=30), collect_options=CollectOptions(concurrency=2))
    clock = VirtualClock()
    mailflow_of(tenant).use_clock(clock)
    with sim_session(ConnectionSettings(), tenant=tenant) as session:
        investigation = run_investigation(session.backend, options, QuietUI())
        steps = StepLog()
        result = run_enrich_step(session.backend, investigation.case_dir, steps,
                                 EnrichOptions(now=NOW, clock=clock, sleep=clock.sleep))
    assert result is not None
    (outcome,) = list(steps)
    assert outcome.name == STEP_NAME and outcome.status is StepStatus.DONE
    # the scope is the investigation's: its attacker reads, exactly
    assert investigation.findings is not None
    investigated = {m.internet_message_id for m in investigation.findings.exposed}
    assert investigated == truth.read_message_ids
    with (investigation.case_dir / "exposed_messages.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["internet_message_id"] for r in rows if r["exposure"] == "accessed"} == investigated
    # the directory's domains make the tenant's own addresses internal
    flow = mailflow_of(tenant)
    for message in result.accessed:
        held = flow.get(message.key)
        assert held is not None
        if held.transported:
            assert message.meta is not None and message.meta.direction == held.direction
    parties = {p.party for p in result.parties if p.party_type == "address" and p.accessed_messages}
    transported = [flow.get(m) for m in truth.read_message_ids]
    assert parties == {a for m in transported if m and m.transported for a in m.parties}
    assert parties <= truth_affected_parties(tenant)
    assert verify_case(investigation.case_dir).ok


def _investigate(tenant_days: int, seed: int, folder: Path, **options: Any) -> tuple[Any, Any]:
    tenant = tenant_days_ago(tenant_days, seed=seed)
    start = NOW - timedelta(days=tenant_days)
    clock = VirtualClock()
    mailflow_of(tenant).use_clock(clock)
    investigate = InvestigateOptions(tenant="contoso.onmicrosoft.com", out_dir=folder, start=start,
                                     end=start + timedelta(days=30), collect_options=CollectOptions(concurrency=2),
                                     enrich_options=EnrichOptions(now=NOW, clock=clock, sleep=clock.sleep), **options)
    with sim_session(ConnectionSettings(), tenant=tenant) as session:
        return tenant, run_investigation(session.backend, investigate, QuietUI())


def test_read_mail_without_parties_makes_the_investigation_exit_3(tmp_path: Path) -> None:
    """Mail read beyond message trace's reach: every such message counted, with the reason, and exit 3."""
    tenant, result = _investigate(130, 31, tmp_path / "old")
    assert tenant.truth is not None
    step = next(o for o in result.steps if o.name == STEP_NAME)
    read = len(tenant.truth.read_message_ids)
    assert step.status is StepStatus.DONE and step.attention
    assert step.details["without_metadata"] == read
    assert step.details["without_metadata_reasons"] == {"no metadata (older than message trace reach)": read}
    assert f"{read} message(s) read WITHOUT sender/recipients" in step.reason
    assert "older than message trace reach" in step.reason and "--allow-mailbox-metadata" in step.reason
    assert result.exit_code == 3
    # the same case with the mailbox allowed to answer: every message has its parties, and the run is complete
    again = _investigate(130, 31, tmp_path / "allowed", allow_mailbox_metadata=True)[1]
    step = next(o for o in again.steps if o.name == STEP_NAME)
    assert not step.attention and step.details["without_metadata"] == 0
    assert again.exit_code == 0


def test_mail_that_never_went_through_transport_is_counted_with_its_reason(tmp_path: Path) -> None:
    tenant, result = _investigate(40, 31, tmp_path / "case")
    assert tenant.truth is not None
    flow = mailflow_of(tenant)
    untransported = sum(1 for i in tenant.truth.read_message_ids if (m := flow.get(i)) and not m.transported)
    assert untransported  # the scenario has such mail (drafts, imports)
    step = next(o for o in result.steps if o.name == STEP_NAME)
    assert step.details["without_metadata"] == untransported and step.attention
    assert "not in message trace" in step.reason
    assert result.exit_code == 3
    record = json.loads((result.case_dir / "investigation.json").read_text(encoding="utf-8"))
    saved = next(s for s in record["steps"] if s["name"] == STEP_NAME)
    assert saved["attention"] and saved["details"]["without_metadata"] == untransported

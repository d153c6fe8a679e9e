"""Enrichment of a case written by ``mia investigate`` (the step the pipeline runs): the same connection,
its findings and directory, the attacker's reads with their true parties, and a case that still verifies."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from enrich_simdata import NOW, VirtualClock, tenant_days_ago

from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.cli.connection import sim_session
from mia_bridge.collect.engine import CollectOptions
from mia_bridge.enrich.api import EnrichOptions
from mia_bridge.enrich.step import STEP_NAME, run_enrich_step
from mia_bridge.evidence import verify_case
from mia_bridge.investigate.pipeline import InvestigateOptions, run_investigation
from mia_bridge.investigate.steps import StepLog, StepOutcome, StepStatus
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
    with sim_session(ConnectionSettings(sim=True), tenant=tenant) as session:
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

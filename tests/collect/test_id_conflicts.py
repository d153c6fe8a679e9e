"""`mia collect` through pypsrp: a row whose Id was already collected with other content is kept and counted."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

from collect_simdata import T0, records, sim_backend, tenant_with

from mia_bridge.analysis.api import AnalysisOptions, analyze_files
from mia_bridge.collect import AuditQuery, CollectOptions, RetryPolicy, collect
from mia_bridge.evidence import verify_case
from mia_bridge.evidence.store import read_records


def test_same_id_with_other_content_is_kept_reported_and_analysed_as_a_conflict(tmp_path: Path) -> None:
    tenant = tenant_with("uniform", 300, days=2)
    rule = {"Id": "5e1f0000-0000-4000-8000-00000000abcd", "CreationTime": "2026-03-01T12:00:00",
            "Operation": "New-InboxRule", "RecordType": 1, "UserId": "victim@contoso.com", "Workload": "Exchange",
            "Parameters": [{"Name": "ForwardTo", "Value": "evil@attacker.example"}]}
    internal = dict(rule, Parameters=[{"Name": "ForwardTo", "Value": "boss@contoso.com"}])
    extra = records(3, T0, 3600, random.Random(5))
    tenant.add_audit_records([rule, internal, *extra, dict(extra[0])])  # and one byte-identical copy
    query = AuditQuery("all", T0, T0 + timedelta(days=2))
    with sim_backend(tenant, "psrp") as exo:
        result = collect(exo, [query], tmp_path, CollectOptions(retry=RetryPolicy(base_s=0.01, cap_s=0.05)))
    counts = result.by_name("all").counts
    kept = read_records(result.by_name("all").path)
    forwards = sorted(r["Parameters"][0]["Value"] for r in kept if r["Id"] == rule["Id"])
    assert forwards == ["boss@contoso.com", "evil@attacker.example"]  # neither dropped
    assert counts.id_conflicts == 1 and counts.duplicates_removed >= 1
    assert counts.retrieved == counts.unique + counts.duplicates_removed
    assert verify_case(tmp_path).ok
    s = analyze_files([result.by_name("all").path], AnalysisOptions()).summary
    assert s["id_conflicts"] == 1
    assert s["id_conflict_details"][0]["fields"] == ["Parameters.Value"]

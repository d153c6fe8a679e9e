"""The same enrichment over the REST backend: message trace through the admin API's InvokeCommand, mailbox
metadata through Graph's /users/{id}/messages with $filter and $select (never a body)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from enrich_simdata import NOW, VirtualClock, offline_case, tenant_days_ago

from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.enrich.api import EnrichOptions, enrich_case
from mia_bridge.enrich.model import normalise_id
from mia_bridge.sim.backend import sim_session
from mia_bridge.sim.mailflow import mailflow_of


def test_enrichment_over_the_rest_backend(tmp_path: Path) -> None:
    tenant = tenant_days_ago(130, seed=7)  # beyond message trace: the mailbox (Graph) answers
    case = offline_case(tenant, tmp_path)
    clock = VirtualClock()
    mailflow_of(tenant).use_clock(clock)
    options = EnrichOptions(now=NOW, clock=clock, sleep=clock.sleep, allow_mailbox_metadata=True)
    with sim_session(ConnectionSettings(backend="rest"), tenant=tenant) as session:
        result = enrich_case(session.backend, case, options)
        requests = list(session.server.requests)
    assert tenant.truth is not None
    assert {m.key for m in result.accessed} == {normalise_id(i) for i in tenant.truth.read_message_ids}
    flow = mailflow_of(tenant)
    for message in result.accessed:
        truth = flow.get(message.key)
        assert truth is not None and message.meta is not None and message.meta.source == "mailbox_graph"
        assert (message.meta.sender, set(message.meta.recipients)) == (truth.sender, set(truth.recipients))
    graph = [urlsplit(r.path) for r in requests if "/messages" in r.path]
    assert graph
    for url in graph:
        query = parse_qs(url.query)
        assert query["$filter"][0].startswith(("internetMessageId eq '", "receivedDateTime lt "))
        assert "body" not in query["$select"][0].lower()
    assert result.potential and all(m.meta and m.meta.source == "mailbox_graph" for m in result.potential)
    assert any("/mailFolders" in r.path for r in requests)
    assert any(r.path.split("?")[0].endswith("/childFolders") for r in requests)  # child folders walked
    nested = [m for m in result.potential if any(f.count("\\") > 1 for f in m.folders)]
    assert nested and all(m.folders == {h.folder} for m in nested if (h := flow.get(m.key)))

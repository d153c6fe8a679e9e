"""``mia investigate --redact-subjects --hash-addresses``: a package that can be shared with third parties.

Through the real path (the CLI's ``--demo``: the simulated compromised tenant behind the PSRP server on
127.0.0.1, pypsrp's client), every file the run writes outside raw evidence is searched for every address
and subject the simulator's ground truth holds for the exposed mailbox: with the flags none is found; without
them the same search finds them (so the search can fail). The chain-of-custody files (manifest.json, state/)
are searched too: without --user they name no party. Raw evidence stays exactly as received, and one keyed
hash is used for every file of the run (pseudonyms join across files).
"""

from __future__ import annotations

import csv
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mia_bridge.bridge.backend import Secret
from mia_bridge.cli.app import main
from mia_bridge.evidence import verify_case
from mia_bridge.evidence.redaction import CHAIN_OF_CUSTODY, RAW_EVIDENCE, Redactor
from mia_bridge.sim import backend as sim_backend
from mia_bridge.sim.mailflow import mailflow_of, truth_affected_parties
from mia_bridge.sim.tenant import Tenant

RECORDS = 800
KEY = "shared-package-test-key"


@dataclass
class Run:
    code: int
    tenant: Tenant
    case: Path
    texts: dict[str, str]  # every file outside raw evidence, as text (Parquet and xlsx decoded), lower case


def _text(path: Path) -> str:
    if path.suffix == ".parquet":
        return str(pd.read_parquet(path).to_csv())
    if path.suffix == ".xlsx":
        with zipfile.ZipFile(path) as book:
            return "".join(book.read(name).decode("utf-8", "replace") for name in book.namelist())
    return path.read_bytes().decode("utf-8", "replace")


def _investigate(tmp: Path, monkeypatch: pytest.MonkeyPatch, *flags: str) -> Run:
    built: list[Any] = []
    original = sim_backend.tenant_for

    def capture(conn: Any, options: Any, **kw: Any) -> Any:
        built.append(original(conn, options, **kw))
        return built[-1]

    monkeypatch.setattr(sim_backend, "tenant_for", capture)
    monkeypatch.setenv("MIA_HASH_KEY", KEY)
    case = tmp / "case"
    code = main(["investigate", "--demo", "--sim-records", str(RECORDS), "--out", str(case), *flags])
    texts = {}
    for path in sorted(case.rglob("*")):
        rel = path.relative_to(case).as_posix()
        if path.is_file() and not rel.startswith(RAW_EVIDENCE):
            texts[rel] = _text(path).lower()
    return Run(code, built[0], case, texts)


def _truth(tenant: Tenant) -> tuple[set[str], set[str], set[str]]:
    """Ground truth: every address and subject on the exposed mailbox's mail, and the external domains."""
    truth = tenant.truth
    assert truth is not None
    flow = mailflow_of(tenant)
    mail = [m for victim in truth.victims for m in flow.in_mailbox(victim)]
    addresses = {a for m in mail for a in m.parties} | truth_affected_parties(tenant) | set(truth.victims)
    subjects = {m.subject for m in mail} | {m.subject for i in truth.read_message_ids if (m := flow.get(i))}
    domains = {a.rsplit("@", 1)[1] for a in addresses} - flow.internal_domains
    return addresses, subjects, domains


def _found(run: Run, values: set[str]) -> dict[str, list[str]]:
    hits = {rel: sorted(v for v in values if v.lower() in text) for rel, text in run.texts.items()}
    return {rel: found for rel, found in hits.items() if found}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def monkeymodule() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def clear(tmp_path_factory: pytest.TempPathFactory, monkeymodule: pytest.MonkeyPatch) -> Run:
    return _investigate(tmp_path_factory.mktemp("clear"), monkeymodule)


@pytest.fixture(scope="module")
def redacted(tmp_path_factory: pytest.TempPathFactory, monkeymodule: pytest.MonkeyPatch) -> Run:
    return _investigate(tmp_path_factory.mktemp("redacted"), monkeymodule, "--redact-subjects", "--hash-addresses")


def test_unredacted_run_shows_parties_and_subjects(clear: Run) -> None:
    """The search below can fail: without the flags, the truth's strings are all over the package."""
    addresses, subjects, _ = _truth(clear.tenant)
    assert clear.code == 0
    found = _found(clear, addresses | subjects)
    for rel in ("report.html", "exposed_messages.csv", "affected_parties.csv", "findings.json", "timeline.csv",
                "analysis/items.parquet"):
        assert found.get(rel), rel
    read = clear.tenant.truth.read_message_ids if clear.tenant.truth else set()
    flow = mailflow_of(clear.tenant)
    read_subjects = {m.subject for i in read if (m := flow.get(i))}
    assert read_subjects <= set(found["exposed_messages.csv"]) and read_subjects & set(found["report.html"])
    assert truth_affected_parties(clear.tenant) <= set(found["affected_parties.csv"])


def test_redacted_run_leaks_no_address_or_subject_outside_raw_evidence(redacted: Run) -> None:
    addresses, subjects, domains = _truth(redacted.tenant)
    assert redacted.code == 0 and addresses and subjects
    assert {"report.html", "exposed_messages.csv", "affected_parties.csv", "findings.json", "timeline.csv",
            "investigation.json", "manifest.json", "enrich/summary.json", "analysis/records.parquet",
            "sparrow/Summary_Export.xlsx"} <= set(redacted.texts)
    assert _found(redacted, addresses | subjects | domains) == {}
    # the exposure is still all there, as pseudonyms and [redacted]
    rows = _rows(redacted.case / "exposed_messages.csv")
    assert redacted.tenant.truth is not None
    assert {r["internet_message_id"] for r in rows if r["exposure"] == "accessed"} == \
        redacted.tenant.truth.read_message_ids
    assert all(r["subject"] == "[redacted]" for r in rows if r["metadata_source"] != "none")
    assert "redacted for sharing" in redacted.texts["report.html"]


def test_one_keyed_hash_for_every_file_of_the_run(redacted: Run) -> None:
    truth = redacted.tenant.truth
    assert truth is not None
    victim = Redactor(hash_addresses=True, key=Secret(KEY)).address(truth.victims[0])
    for rel in ("report.html", "exposed_messages.csv", "affected_parties.csv", "findings.json", "timeline.csv",
                "analysis/items.parquet", "investigation.json"):
        assert victim in redacted.texts[rel], rel
    sparrow = [rel for rel in redacted.texts if rel.startswith("sparrow/AppInvestigations/")]
    assert any(victim in redacted.texts[rel] for rel in sparrow)
    senders = {r["sender"] for r in _rows(redacted.case / "exposed_messages.csv") if r["sender"]}
    parties = {r["party"] for r in _rows(redacted.case / "affected_parties.csv")}
    assert senders and senders <= parties  # the two tables join on the pseudonyms


def test_raw_evidence_is_kept_as_received_and_the_settings_are_recorded(redacted: Run) -> None:
    case, tenant = redacted.case, redacted.tenant
    assert verify_case(case).ok
    truth = tenant.truth
    assert truth is not None
    by_id = {r["Id"]: r for r in tenant.audit_records()}
    lines = (case / "evidence" / "mia-mailitemsaccessed.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines and all(json.loads(line) == by_id[json.loads(line)["Id"]] for line in lines)
    assert truth.victims[0] in "\n".join(lines)
    raw = (case / "enrich" / "raw" / "message_trace.jsonl").read_text(encoding="utf-8")
    flow = mailflow_of(tenant)
    assert any(m.subject in raw for i in truth.read_message_ids if (m := flow.get(i)))
    manifest = json.loads((case / "manifest.json").read_text(encoding="utf-8"))
    record = manifest["investigation"]["redaction"]
    assert record["redact_subjects"] and record["hash_addresses"] and record["hash_key"] == "MIA_HASH_KEY"
    assert record["raw_evidence_not_redacted"] == list(RAW_EVIDENCE)
    assert record["chain_of_custody_not_redacted"] == list(CHAIN_OF_CUSTODY)
    assert KEY not in (case / "manifest.json").read_text(encoding="utf-8")
    assert all(KEY not in text for text in redacted.texts.values())
    report = redacted.texts["report.html"]
    assert "sharing this package" in report and "never share it" in report and "evidence/" in report
    assert "chain of custody" in report and "state/" in report


def test_enrich_refuses_a_case_whose_analysis_is_hashed(redacted: Run, capsys: pytest.CaptureFixture[str]) -> None:
    """The hashed tables no longer name the mailboxes to ask: a clear refusal, not lookups of pseudonyms."""
    assert main(["enrich", str(redacted.case), "--sim", "--sim-records", str(RECORDS)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--hash-addresses" in err and "Traceback" not in err

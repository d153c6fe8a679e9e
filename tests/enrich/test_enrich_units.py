"""The pieces on their own: the rate limiter's guarantee, the scope without attacker context, the step's
outcomes, direction and the keyed hash."""

from __future__ import annotations

import json
from pathlib import Path

from enrich_simdata import VirtualClock, offline_case, run_enrich, tenant_days_ago
from hypothesis import given, settings
from hypothesis import strategies as st

from mia_bridge.bridge.backend import Secret
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.enrich.api import EnrichOptions
from mia_bridge.enrich.message_trace import direction
from mia_bridge.enrich.ratelimit import TokenBucket
from mia_bridge.enrich.scope import load_scope
from mia_bridge.evidence.redaction import Redactor
from mia_bridge.investigate.enrich_step import STEP_NAME, run_enrich_step
from mia_bridge.investigate.steps import StepLog, StepStatus
from mia_bridge.sim.backend import sim_session
from mia_bridge.sim.mailflow import mailflow_of


def test_token_bucket_never_exceeds_the_limit_in_any_window() -> None:
    clock = VirtualClock()
    bucket = TokenBucket(100, 300.0, clock=clock, sleep=clock.sleep)
    times = [bucket.acquire() for _ in range(450)]
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t - start < 300.0) <= 100
    assert bucket.waits > 0
    # and it is not needlessly slow: 450 queries take about 450 / (50 per 300 s) after the first 50
    assert times[-1] - times[0] <= (450 - 50) * 6.0 + 1


def test_scope_without_attacker_context_takes_every_bind(tmp_path: Path) -> None:
    tenant = tenant_days_ago(40, seed=21)
    case = offline_case(tenant, tmp_path)
    (case / "findings.json").unlink()
    scope = load_scope(case)
    assert scope.notes and "no attacker context" in scope.notes[0]
    assert tenant.truth is not None
    assert len(scope.accessed) > len(tenant.truth.read_message_ids)  # benign reads too
    narrowed = load_scope(case, suspicious_ips=("192.0.2.66",))
    assert {m.internet_message_id for m in narrowed.accessed.values()} == tenant.truth.read_message_ids


def test_step_outcomes(tmp_path: Path) -> None:
    tenant = tenant_days_ago(40, seed=22)
    case = offline_case(tenant, tmp_path / "case")
    clock = VirtualClock()
    mailflow_of(tenant).use_clock(clock)
    options = EnrichOptions(clock=clock, sleep=clock.sleep)
    with sim_session(ConnectionSettings(), tenant=tenant) as session:
        steps = StepLog()
        result = run_enrich_step(session.backend, case, steps, options)
        assert result is not None
        (outcome,) = list(steps)
        assert outcome.name == STEP_NAME and outcome.status is StepStatus.DONE
        assert f"{len(result.accessed)} message(s) read" in outcome.reason
        mailflow_of(tenant).trace_denied = True
        denied = StepLog()
        run_enrich_step(session.backend, case, denied, options)
        (outcome,) = list(denied)
        assert outcome.status is StepStatus.SKIPPED and "permission denied" in outcome.reason
        empty = StepLog()
        (tmp_path / "empty").mkdir()
        assert run_enrich_step(session.backend, tmp_path / "empty", empty, options) is None
        (outcome,) = list(empty)
        assert outcome.status is StepStatus.SKIPPED and "no MailItemsAccessed analysis" in outcome.reason


def test_direction() -> None:
    inside = {"contoso.com"}
    assert direction("a@fabrikam.example", ["b@contoso.com"], inside) == "Inbound"
    assert direction("b@contoso.com", ["a@fabrikam.example", "c@contoso.com"], inside) == "Outbound"
    assert direction("b@CONTOSO.com", ["c@contoso.com"], inside) == "Internal"
    assert direction("b@contoso.com", ["c@contoso.com"], set()) == ""


def test_keyed_hash_is_stable_per_key_and_differs_across_keys() -> None:
    one = Redactor(hash_addresses=True, key=Secret("k1"))
    same = Redactor(hash_addresses=True, key=Secret("k1"))
    other = Redactor(hash_addresses=True, key=Secret("k2"))
    assert one.address("Megan.Bowen@contoso.com") == same.address("megan.bowen@contoso.com")
    assert one.address("megan.bowen@contoso.com") != other.address("megan.bowen@contoso.com")
    assert one.text("mail from x.y@fabrikam.example about <id@server.prod.outlook.com>").count("addr-") == 1
    assert "k1" not in json.dumps(one.describe())


def test_rerun_keeps_earlier_raw_answers_and_the_case_verifies(tmp_path: Path) -> None:
    from mia_bridge.evidence import verify_case

    tenant = tenant_days_ago(40, seed=23)
    case = offline_case(tenant, tmp_path)
    run_enrich(tenant, case)
    raw = case / "enrich" / "raw" / "message_trace.jsonl"
    first = raw.read_text(encoding="utf-8")
    run_enrich(tenant, case)
    assert raw.read_text(encoding="utf-8").startswith(first)  # appended, never rewritten
    assert verify_case(case).ok


def test_report_tables_list_the_parties(tmp_path: Path) -> None:
    from mia_bridge.investigate.enrich_report import enrich_report_tables

    tenant = tenant_days_ago(40, seed=24)
    run = run_enrich(tenant, offline_case(tenant, tmp_path))
    parties, messages = enrich_report_tables(run.result)
    assert parties.title == "Affected parties"
    assert {r["Party"] for r in parties.rows} == {p.party for p in run.result.parties}
    assert len(messages.rows) == len(run.result.accessed)
    assert enrich_report_tables(None) == []


@settings(max_examples=60, deadline=None)
@given(limit=st.integers(2, 120), window=st.floats(1.0, 600.0),
       gaps=st.lists(st.floats(0.0, 50.0), min_size=1, max_size=400))
def test_token_bucket_guarantee_holds_for_any_pattern(limit: int, window: float, gaps: list[float]) -> None:
    clock = VirtualClock()
    bucket = TokenBucket(limit, window, clock=clock, sleep=clock.sleep)
    times = []
    for gap in gaps:  # the caller idles between queries, then asks again
        clock.now += gap
        times.append(bucket.acquire())
    right = 0
    for left, start in enumerate(times):  # two pointers: queries in [start, start + window)
        right = max(right, left)
        while right < len(times) and times[right] - start < window - 1e-9:
            right += 1
        assert right - left <= limit


def test_free_text_hashing_catches_every_address_form_and_keeps_message_ids() -> None:
    redactor = Redactor(hash_addresses=True, key=Secret("k"))
    guest = "j.smith_fabrikam.example#EXT#@contoso.onmicrosoft.com"
    text = (f"'Megan.Bowen@contoso.com' forwarded to SMTP:x@evil.example. Guest {guest}; "
            "ids <CAF=abc@mail.gmail.com> and <CY5PR05MB6604@CY5PR05MB6604.namprd05.prod.outlook.com>")
    out = redactor.text(text)
    for clear in ("megan.bowen", "x@evil.example", "fabrikam", "j.smith"):
        assert clear not in out.lower(), clear
    assert redactor.address("megan.bowen@contoso.com") in out
    assert "<CAF=abc@mail.gmail.com>" in out and "<CY5PR05MB6604@CY5PR05MB6604.namprd05.prod.outlook.com>" in out
    assert out.count("addr-") == 3 and out.endswith(">")


def test_scrubber_keeps_message_id_fields_hashes_keys_and_redacts_known_subjects() -> None:
    from mia_bridge.evidence.redaction import Scrubber

    scrub = Scrubber(Redactor(redact_subjects=True, hash_addresses=True, key=Secret("k")))
    scrub.add_subjects(["Invoice 43168 due", "Invoice 43168 due — final", "Hi"])
    data = {
        "internet_message_id": "abc@server.prod.outlook.com",  # normalised: no <>, but a message id
        "mailboxes": {"megan.bowen@contoso.com": 3},
        "rows": [("About INVOICE 43168 DUE — final", "Hi there")],
    }
    out = scrub.value(data)
    assert out["internet_message_id"] == data["internet_message_id"]
    assert list(out["mailboxes"]) == [scrub.redactor.address("megan.bowen@contoso.com")]
    assert out["rows"] == [("About [redacted]", "Hi there")]  # longest subject first; too short to search
    assert scrub.value(out) == out  # idempotent: a file scrubbed twice is unchanged
    assert Scrubber(Redactor()).value(data) is data  # nothing asked: nothing touched

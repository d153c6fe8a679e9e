"""Resume verifies before it trusts: a planted journal, a lowered offset, deleted or edited evidence are
detected by the run itself, which stops with a clear message and changes nothing; each resume is recorded
in the manifest; an unjournalled tail is kept aside, never destroyed."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from collect_simdata import T0, ids, tenant_with, truth_ids

from mia_bridge.cli.app import main
from mia_bridge.collect import AuditQuery, CollectOptions, QueryResult, RetryPolicy, SessionPolicy, collect
from mia_bridge.errors import EvidenceError
from mia_bridge.evidence import verify_case
from mia_bridge.evidence.store import read_records
from mia_bridge.sim.direct import DirectSimBackend

QUERY = AuditQuery("all", T0, T0 + timedelta(days=30))
# Plain windowing on a tenant without the search quirks (honest plain calls): many small windows to tamper with.
OPTIONS = CollectOptions(retry=RetryPolicy(base_s=0.01, cap_s=0.05), sessions=SessionPolicy.NEVER, concurrency=2)


class StopAfter:
    def __init__(self, n: int) -> None:
        self.n = n

    def query_started(self, name: str, total_seconds: int, done_seconds: int) -> None:
        pass

    def window_done(self, name: str, seconds: int, records: int, calls: int, retries: int) -> None:
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt

    def query_finished(self, name: str, result: QueryResult) -> None:
        pass


def _run(tenant: object, case: Path, progress: object = None) -> set[str]:
    with DirectSimBackend(tenant) as backend:  # type: ignore[arg-type]
        result = collect(backend, [QUERY], case, OPTIONS, progress)  # type: ignore[arg-type]
    return ids(read_records(result.by_name("all").path))


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    tenant = tenant_with("uniform", 6000, quirks=frozenset())
    case = tmp_path_factory.mktemp("finished") / "case"
    _run(tenant, case)
    return tenant, case


def _copy(case: Path, tmp_path: Path) -> Path:
    target = tmp_path / "case"
    shutil.copytree(case, target)
    return target


def _snapshot(case: Path) -> dict[str, bytes]:
    """Every file but the manifest (which records the refused run), and the manifest's file list."""
    files = {p.relative_to(case).as_posix(): p.read_bytes() for p in sorted(case.rglob("*")) if p.is_file()}
    files["manifest.json"] = json.dumps(json.loads(files["manifest.json"])["files"]).encode()
    return files


def _journal(case: Path) -> Path:
    return case / "state" / "all.journal.jsonl"


def _entry(**overrides: object) -> str:
    entry = {"stream": 0, "start": QUERY.start_s, "end": QUERY.end_s, "mode": "plain", "status": "complete",
             "rows": 0, "new": 0, "duplicates": 0, "duplicates_of_superseded": 0, "unparseable": 0,
             "out_of_window": 0, "in_window": 0, "calls": 1, "retries": 0, "offset": 0, "unparsed_offset": 0,
             "seconds": 0.1, **overrides}
    return json.dumps(entry) + "\n"


def test_planted_journal_in_a_fresh_folder_stops_the_run(finished: tuple[object, Path], tmp_path: Path) -> None:
    tenant, case = finished
    fresh = tmp_path / "planted"
    (fresh / "state").mkdir(parents=True)
    shutil.copy(case / "state" / "all.query.json", fresh / "state")  # the same query, so the header matches
    _journal(fresh).write_text(_entry())  # "the whole period is complete, 0 records"
    with pytest.raises(EvidenceError, match="journal without its evidence"):
        _run(tenant, fresh)
    assert not (fresh / "evidence" / "all.jsonl").exists()


def test_planted_journal_over_a_finished_case_stops_the_run(finished: tuple[object, Path], tmp_path: Path) -> None:
    tenant, case = _copy_case(finished, tmp_path)
    _journal(case).write_text(_entry())
    before = _snapshot(case)
    with pytest.raises(EvidenceError, match="manifest registered"):
        _run(tenant, case)
    assert _snapshot(case) == before  # nothing was cut, nothing re-registered
    last_run = json.loads((case / "manifest.json").read_text())["collection"]["runs"][-1]
    assert "manifest registered" in last_run["resume_refused"]
    assert any("state/all.journal.jsonl: SHA-256" in p for p in verify_case(case).problems)


def test_lowered_offset_is_detected(finished: tuple[object, Path], tmp_path: Path) -> None:
    tenant, case = _copy_case(finished, tmp_path)
    lines = _journal(case).read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["offset"] > 0
    last["offset"] -= 300
    _journal(case).write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")
    before = _snapshot(case)
    with pytest.raises(EvidenceError, match="journal"):
        _run(tenant, case)
    assert _snapshot(case) == before


def test_lowered_offset_rewritten_consistently_is_caught_by_the_manifest(
    finished: tuple[object, Path], tmp_path: Path
) -> None:
    """The attacker drops the last entries (a shorter, self-consistent journal): the manifest registered more."""
    tenant, case = _copy_case(finished, tmp_path)
    lines = _journal(case).read_text().splitlines()
    offsets = [json.loads(line)["offset"] for line in lines]
    keep = offsets.index(offsets[-1])  # every entry from the first that reached the final size on is dropped
    assert keep >= 1
    _journal(case).write_text("\n".join(lines[:keep]) + "\n")
    with pytest.raises(EvidenceError, match="manifest registered"):
        _run(tenant, case)


def test_deleted_evidence_is_detected(finished: tuple[object, Path], tmp_path: Path) -> None:
    tenant, case = _copy_case(finished, tmp_path)
    (case / "evidence" / "all.jsonl").unlink()
    with pytest.raises(EvidenceError, match="missing"):
        _run(tenant, case)
    assert not (case / "evidence" / "all.jsonl").exists()


def test_edited_evidence_of_the_same_size_is_detected(finished: tuple[object, Path], tmp_path: Path) -> None:
    tenant, case = _copy_case(finished, tmp_path)
    path = case / "evidence" / "all.jsonl"
    data = path.read_bytes()
    index = data.index(b'"Operation":"') + len(b'"Operation":"')
    path.write_bytes(data[:index] + (b"X" if data[index:index + 1] != b"X" else b"Y") + data[index + 1:])
    with pytest.raises(EvidenceError, match="SHA-256"):
        _run(tenant, case)


def test_journal_with_a_bad_line_in_the_middle_is_refused(finished: tuple[object, Path], tmp_path: Path) -> None:
    tenant, case = _copy_case(finished, tmp_path)
    lines = _journal(case).read_text().splitlines()
    lines.insert(1, "not a journal entry")
    _journal(case).write_text("\n".join(lines) + "\n")
    with pytest.raises(EvidenceError, match="line 2"):
        _run(tenant, case)


def test_the_cli_says_what_is_wrong_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = ["--sim", "--sim-records", "600"]
    period = ["--start", "2026-10-01", "--end", "2026-10-31"]
    case = tmp_path / "case"
    assert main(["collect", *sim, *period, "--out", str(case), "--quiet"]) == 0
    journal = case / "state" / "ual.journal.jsonl"
    first = json.loads(journal.read_text().splitlines()[0])  # one window covering it all, nothing written
    first.update(start=int(first["start"]), end=int(json.loads(journal.read_text().splitlines()[-1])["end"]),
                 rows=0, new=0, duplicates=0, unparseable=0, offset=0, sha256="", status="complete")
    journal.write_text(json.dumps(first) + "\n")
    assert main(["collect", *sim, *period, "--out", str(case), "--quiet"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "resume journal does not match the evidence" in err and "start a new case" in err


def test_each_resume_is_recorded_and_an_unjournalled_tail_is_kept(tmp_path: Path) -> None:
    tenant = tenant_with("bursty", 9000, quirks=frozenset())
    case = tmp_path / "case"
    with pytest.raises(KeyboardInterrupt):
        _run(tenant, case, StopAfter(3))
    evidence = case / "evidence" / "all.jsonl"
    with evidence.open("a") as fh:  # a fetch being written when the process died
        fh.write('{"Id":"half-written-record", "Creation')
    assert _run(tenant, case) == truth_ids(tenant, QUERY.start, QUERY.end)
    runs = json.loads((case / "manifest.json").read_text())["collection"]["runs"]
    resumed = runs[-1]["resumed"]["all"]
    assert resumed["journal_entries"] >= 3 and len(resumed["sha256"]) == 64
    tail = '{"Id":"half-written-record", "Creation'
    assert resumed["discarded_unjournalled_bytes"] == {"evidence/all.jsonl": len(tail)}
    kept = case / resumed["kept_in"][0]
    assert kept.read_text() == '{"Id":"half-written-record", "Creation'  # set aside, not destroyed
    report = verify_case(case)
    assert report.ok, report.problems  # the kept tail is registered (state/), nothing unlisted


def _copy_case(finished: tuple[object, Path], tmp_path: Path) -> tuple[object, Path]:
    tenant, case = finished
    return tenant, _copy(case, tmp_path)


def test_with_a_case_key_even_a_fully_planted_journal_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a key, a journal planted with an empty evidence file and no manifest is indistinguishable from
    a first run killed on an empty tenant. With one, every journal line carries a chained HMAC."""
    monkeypatch.setenv("MIA_CASE_KEY", "k" * 32)
    tenant = tenant_with("bursty", 9000, quirks=frozenset())
    case = tmp_path / "case"
    with pytest.raises(KeyboardInterrupt):
        _run(tenant, case, StopAfter(3))
    assert all(json.loads(line)["mac"] for line in _journal(case).read_text().splitlines())
    assert _run(tenant, case) == truth_ids(tenant, QUERY.start, QUERY.end)  # a keyed resume works

    planted = tmp_path / "planted"
    (planted / "state").mkdir(parents=True)
    (planted / "evidence").mkdir()
    shutil.copy(case / "state" / "all.query.json", planted / "state")
    (planted / "evidence" / "all.jsonl").write_bytes(b"")
    _journal(planted).write_text(_entry(sha256=hashlib.sha256(b"").hexdigest()))
    with pytest.raises(EvidenceError, match="not signed with this case key"):
        _run(tenant, planted)
    monkeypatch.delenv("MIA_CASE_KEY")
    assert _run(tenant, planted) == set()  # the documented limit without a key: the seal must catch it

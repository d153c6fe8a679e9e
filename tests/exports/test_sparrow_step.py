"""The sparrow/ step as the pipeline runs it: files in Sparrow's layout from the searches' records, each
file written on its own (one that cannot be written is reported, the others are written), the workbook
from the top-level files only, formula-like cells counted."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mia_bridge.collect.engine import QueryCounts, QueryResult
from mia_bridge.investigate.directory import DirectoryData
from mia_bridge.investigate.plan import SAML_SEARCH, SPARROW_TENANT_SEARCHES, app_searches
from mia_bridge.investigate.searches import SearchRun, write_sparrow_exports

WHEN = datetime(2026, 10, 1, tzinfo=UTC)


def _run(spec: Any, records: list[dict[str, Any]]) -> SearchRun:
    query = spec.to_audit_query(WHEN, WHEN + timedelta(days=1))
    result = QueryResult(query, Path("unused.jsonl"), QueryCounts(), 1, 0, [], [], False)
    return SearchRun(spec, result=result, records=records)


def _runs() -> list[SearchRun]:
    specs = {s.sparrow_row: s for s in (*SPARROW_TENANT_SEARCHES, SAML_SEARCH)}
    login = {"Id": "same-sign-in", "Operation": "UserLoggedIn", "UserId": "=HYPERLINK(\"x\")@fed.example"}
    mail, files = app_searches("aaaa0000-0000-0000-0000-000000000001", "..\u202eCON")
    return [
        _run(specs["5"], [{"Id": "c1", "Operation": "Consent to application."}]),
        _run(specs["6"], [login, {"Id": "managed", "UserId": "x@contoso.com"}]),
        _run(specs["8a"], [login]),
        _run(specs["8b"], []),
        _run(specs["8c"], [login, {"Id": "other"}]),
        _run(mail, [{"Id": "m1", "Operation": "MailItemsAccessed", "Folders": [{"Path": "\\Inbox"}]}]),
        _run(files, []),
    ]


def _app_runs_without_rows() -> list[tuple[Any, list[dict[str, Any]]]]:
    mail, files = app_searches("aaaa0000-0000-0000-0000-000000000001", None)
    return [(mail, []), (files, [])]


def _directory() -> DirectoryData:
    return DirectoryData(
        domains=[{"Id": "fed.example", "AuthenticationType": "Federated", "IsRoot": True}],
        federation={"fed.example": [{"FederatedIdpMfaBehavior": "rejectMfaByFederatedIdp"}]},
    )


def test_layout_append_order_and_formula_count(tmp_path: Path) -> None:
    out = write_sparrow_exports(tmp_path, _runs(), _directory(), ";")
    names = sorted(p.relative_to(tmp_path).as_posix() for p in out.written)
    assert names == [
        "AppInvestigations/_CON/MailItems_Operations_Export.aaaa0000-0000-0000-0000-000000000001.csv",
        "ApplicationGraphPermissions.csv", "Consent_Operations_Export.csv", "Domain_List.csv",
        "PSLogin_Operations_Export.csv", "SAMLToken_Operations_Export.csv", "Summary_Export.xlsx",
    ]  # fmt: skip
    pslogin = (tmp_path / "PSLogin_Operations_Export.csv").read_text(encoding="ascii").splitlines()
    assert [line.split(";")[1] for line in pslogin[1:]] == ['"same-sign-in"', '"same-sign-in"', '"other"']
    assert out.rows["PSLogin_Operations_Export.csv"] == 3
    assert out.rows["SAMLToken_Operations_Export.csv"] == 1  # only the flagged domain's user
    assert out.formula_cells == {"PSLogin_Operations_Export.csv": 2, "SAMLToken_Operations_Export.csv": 1}
    assert (tmp_path / "ApplicationGraphPermissions.csv").read_bytes() == b""
    with zipfile.ZipFile(tmp_path / "Summary_Export.xlsx") as z:
        book = z.read("xl/workbook.xml").decode()
    assert "MailItems" not in book  # AppInvestigations stays out of the workbook, as in Sparrow
    empty = write_sparrow_exports(tmp_path / "one-app", [_run(*r) for r in _app_runs_without_rows()], _directory())
    assert (tmp_path / "one-app" / "AppInvestigations").is_dir()  # created when the mode is chosen, as Sparrow
    assert not any((tmp_path / "one-app" / "AppInvestigations").iterdir()) and empty.failed == {}
    sheets = [part.split('"')[0] for part in book.split('<sheet name="')[1:]]
    assert sheets == ["SAMLToken", "PSLogin", "Domain_List", "Consent", "ApplicationGraphPermissions"]


def test_one_file_that_cannot_be_written_is_reported_and_the_others_are_written(tmp_path: Path) -> None:
    (tmp_path / "PSLogin_Operations_Export.csv").mkdir(parents=True)  # something in the way of one file
    out = write_sparrow_exports(tmp_path, _runs(), _directory())
    assert list(out.failed) == ["PSLogin_Operations_Export.csv"]
    assert "cannot write" in out.failed["PSLogin_Operations_Export.csv"]
    written = {p.name for p in out.written}
    assert {"Consent_Operations_Export.csv", "SAMLToken_Operations_Export.csv", "Domain_List.csv",
            "ApplicationGraphPermissions.csv", "Summary_Export.xlsx"} <= written  # fmt: skip
    assert "PSLogin_Operations_Export.csv" not in written


def test_the_run_and_the_report_point_to_the_workbook_when_cells_look_like_formulas(tmp_path: Path) -> None:
    from mia_bridge.investigate.pipeline import InvestigateOptions, InvestigationResult, _sparrow_step
    from mia_bridge.investigate.report_model import build_report_model
    from mia_bridge.investigate.steps import StepLog

    outcomes: list[Any] = []
    steps = StepLog(outcomes.append)
    result = InvestigationResult(tmp_path, steps)
    _sparrow_step(tmp_path, _runs(), _directory(), ",", result, steps)
    step = next(o for o in outcomes if o.name == "Sparrow exports: formula-like cells")
    assert step.attention and "3 cell(s)" in step.reason and "Summary_Export.xlsx" in step.reason
    assert "PSLogin_Operations_Export.csv (2)" in step.reason and "SAMLToken_Operations_Export.csv (1)" in step.reason
    main_step = next(o for o in outcomes if o.name == "Sparrow exports")
    assert "deliberately lossy" in main_step.reason and "evidence/" in main_step.reason
    options = InvestigateOptions(tenant="contoso.onmicrosoft.com", out_dir=tmp_path, start=WHEN, end=WHEN)
    model = build_report_model(result, options, WHEN)
    notes = " ".join(model.notes)
    assert "sparrow/Summary_Export.xlsx" in notes and "deliberately lossy" in notes and "evidence/" in notes


def test_records_powershell_51_cannot_read_are_counted_per_file_in_the_same_pass_as_the_writing(
    tmp_path: Path,
) -> None:
    """Counted while each file is written (one pass over the searches' records, which may be a streamed
    evidence file), whether or not the file is then written at all."""
    runs = _runs()
    twice = {"Id": "dup-keys", "ExtendedProperties": [{"Name": "a", "name": "b"}]}  # 5.1: "duplicated keys"
    runs[2] = _run(runs[2].spec, [*runs[2].records, twice])  # PSLogin, search 8a
    runs[3] = _run(runs[3].spec, [twice, {**twice, "Id": "dup-keys-2"}])  # PSLogin, search 8b
    passes: list[int] = []

    class Counted(list[dict[str, Any]]):
        def __iter__(self) -> Any:
            passes.append(1)
            return super().__iter__()

    runs[2] = _run(runs[2].spec, Counted(runs[2].records))
    out = write_sparrow_exports(tmp_path, runs, _directory())
    assert out.unreadable == {"PSLogin_Operations_Export.csv": 3}
    assert out.rows["PSLogin_Operations_Export.csv"] == 3  # the readable rows only
    assert len(passes) == 1  # read once, by the writer
    only_unreadable = write_sparrow_exports(tmp_path / "none", [_run(runs[3].spec, [twice])], _directory())
    assert only_unreadable.unreadable == {"PSLogin_Operations_Export.csv": 1}  # no file, still counted

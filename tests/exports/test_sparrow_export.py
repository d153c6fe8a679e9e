"""Sparrow's files, rule by rule: each expectation is written out by hand from Sparrow.ps1 and PowerShell
5.1's cmdlets (see mia_bridge/exports/ps51.py for the sources), plus a fuzz against the independent model
in ``sparrow_oracle``."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest
import sparrow_oracle as oracle
from hypothesis import given, settings
from hypothesis import strategies as st

from mia_bridge.exports import ps51
from mia_bridge.exports.sparrow import (
    AAD_COLUMNS,
    EXO2_COLUMNS,
    EXO_COLUMNS,
    SHAREPOINT_COLUMNS,
    app_investigation_path,
    domain_list_rows,
    format_cell,
    graph_permission_rows,
    listing_file,
    safe_folder_name,
    sparrow_csv_text,
    ual_file,
)
from mia_bridge.exports.sparrow_workbook import excel_value, sheet_name, sheet_order, write_summary_workbook

# Copied from Sparrow.ps1's Export-UALData (peer-tools.md §1.5), kept here as literal text so a change to
# the module's tuples cannot silently change the expectation.
SPARROW_AAD = (
    "CreationTime, Id, Operation, Organization, RecordType, ResultStatus, LogonError, UserKey, UserType, Version, "
    "Workload, ClientIP, ObjectId, UserId, AzureActiveDirectoryEventType, ExtendedProperties, ModifiedProperties, "
    "Actor, ActorContextId, ActorIpAddress, InterSystemsId, IntraSystemId, SupportTicketId, Target, "
    "TargetContextId, ApplicationId"
)
SPARROW_EXO = (
    "CreationTime, Id, Operation, OrganizationId, RecordType, ResultStatus, UserKey, UserType, Version, Workload, "
    "UserId, AppId, ClientAppId, ClientIPAddress, ClientInfoString, ExternalAccess, InternalLogonType, LogonType, "
    "LogonUserSid, MailboxGuid, MailboxOwnerSid, MailboxOwnerUPN, OperationProperties, OrganizationName, "
    "OriginatingServer, Folders, OperationCount"
)
SPARROW_EXO2 = (
    "CreationTime, Id, Operation, OrganizationId, RecordType, ResultStatus, UserKey, UserType, Version, Workload, "
    "ClientIP, UserId, ClientIPAddress, ClientInfoString, ExternalAccess, InternalLogonType, LogonType, "
    "LogonUserSid, MailboxGuid, MailboxOwnerSid, MailboxOwnerUPN, OrganizationName, OriginatingServer"
)
SPARROW_SHAREPOINT = (
    "CreationTime, Id, Operation, OrganizationId, RecordType, UserKey, UserType, Version, Workload, ClientIP, "
    "ObjectId, UserId, ApplicationId, CorrelationId, EventSource, ItemType, ListId, ListItemUniqueId, Site, "
    "UserAgent, WebId, HighPriorityMediaProcessing, SourceFileExtension, SiteUrl, SourceFileName, SourceRelativeUrl"
)


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(","))


def test_column_sets_match_sparrow_exactly() -> None:
    assert _split(SPARROW_AAD) == AAD_COLUMNS and len(AAD_COLUMNS) == 26
    assert _split(SPARROW_EXO) == EXO_COLUMNS and len(EXO_COLUMNS) == 27
    assert _split(SPARROW_EXO2) == EXO2_COLUMNS and len(EXO2_COLUMNS) == 23
    assert _split(SPARROW_SHAREPOINT) == SHAREPOINT_COLUMNS and len(SHAREPOINT_COLUMNS) == 26


def test_plain_columns_null_empty_bool_number() -> None:
    # Export-Csv: $null is nothing (an unquoted empty cell), "" is quoted, booleans True/False
    assert format_cell("UserKey", None) is None
    assert format_cell("UserKey", "") == ""
    assert format_cell("ExternalAccess", False) == "False" and format_cell("ExternalAccess", True) == "True"
    assert format_cell("RecordType", 50) == "50" and format_cell("Version", 1.5) == "1.5"
    assert format_cell("ClientIP", ["a", "b"]) == "System.Object[]"  # object[].ToString()
    assert format_cell("ClientIP", {"a": 1, "b": None, "c": {"d": 1}}) == "@{a=1; b=; c=}"
    # member access is case-insensitive: AuditData's "clientIP" fills Sparrow's ClientIP
    text = sparrow_csv_text([[{"clientIP": "1.2.3.4"}]], ["ClientIP", "UserId"])
    assert text == '"ClientIP","UserId"\r\n"1.2.3.4",\r\n'


def test_json_columns_pipeline_unrolling_and_null() -> None:
    assert format_cell("Actor", [{"ID": "x", "Type": 0}]) == '{"ID":"x","Type":0}'  # one element: bare
    assert format_cell("Actor", [{"ID": "x"}, {"ID": "y"}]) == '[{"ID":"x"},{"ID":"y"}]'
    assert format_cell("Actor", []) == ""  # nothing in the pipeline: Out-String gives ""
    assert format_cell("Actor", None) == "null" and format_cell("Target", "t") == '"t"'
    assert format_cell("ExtendedProperties", [True, 2, None]) == "[true,2,null]"


def test_json_escaping_of_powershell_51() -> None:
    value = {"Name": "it's <b> & \"q\" \\ \t\n\x01\u2028é"}
    assert format_cell("ExtendedProperties", value) == (
        '{"Name":"it\\u0027s \\u003cb\\u003e \\u0026 \\"q\\" \\\\ \\t\\n\\u0001\\u2028é"}'
    )


def test_depth_two_then_powershell_text() -> None:
    # two folders: the array is level 0, a folder 1, FolderItems 2, each item 3: its @{...} text
    folders = [
        {"FolderItems": [{"InternetMessageId": "<a@x>", "SizeInBytes": 10}], "Path": "\\Inbox"},
        {"FolderItems": [{"InternetMessageId": "<b@x>"}, {"InternetMessageId": "<c@x>"}], "Path": "\\Sent"},
    ]
    assert format_cell("Folders", folders) == (
        '[{"FolderItems":["@{InternetMessageId=a@x; SizeInBytes=10}"],"Path":"\\\\Inbox"},'
        '{"FolderItems":["@{InternetMessageId=b@x}","@{InternetMessageId=c@x}"],"Path":"\\\\Sent"}]'
    )
    # one folder is written bare, so its items sit at level 2 and stay objects
    assert format_cell("Folders", folders[:1]) == (
        '{"FolderItems":[{"InternetMessageId":"a@x","SizeInBytes":10}],"Path":"\\\\Inbox"}'
    )
    # a deeper array is its elements joined by spaces (objects in it print as "", arrays as System.Object[])
    deep = {"a": {"b": {"c": [1, "two", None, True, {"x": 1}, [3]]}}}
    assert format_cell("Target", deep) == '{"a":{"b":{"c":"1 two  True  System.Object[]"}}}'
    assert format_cell("Target", {"a": {"b": {"c": {}}}}) == '{"a":{"b":{"c":""}}}'


def test_modified_properties_drop_crlf_escapes() -> None:
    value = [{"Name": "X", "NewValue": "[\r\n  \"a\"\r\n]"}, {"Name": "Y", "NewValue": "1\r2"}]
    assert format_cell("ModifiedProperties", value) == (
        '[{"Name":"X","NewValue":"[  \\"a\\"]"},{"Name":"Y","NewValue":"1\\r2"}]'
    )
    assert format_cell("ModifiedProperties", []) == ""


def test_export_csv_quoting_ascii_and_delimiter(tmp_path: Path) -> None:
    record = {"CreationTime": "2026-10-19T02:13:00", "Id": 'a"b', "UserId": "🦜é@x", "ResultStatus": None}
    item = ual_file("Consent_Operations_Export.csv", [[record]], AAD_COLUMNS, ";")
    lines = item.data.split(b"\r\n")
    assert lines[0] == b";".join(f'"{c}"'.encode() for c in AAD_COLUMNS)
    assert lines[1].startswith(b'"2026-10-19T02:13:00";"a""b";;;;;;;;;;;;"???@x";')
    assert lines[2] == b"" and len(lines) == 3  # CRLF after the last line too
    assert ps51.ascii_bytes("\U0001f99c\ud800é") == b"????"  # a pair is two UTF-16 code units, a lone one is one


def test_searches_sharing_a_file_are_appended_without_deduplication() -> None:
    a, b, c = ({"Id": n, "Operation": "UserLoggedIn"} for n in "abc")
    text = sparrow_csv_text([[a, b], [], [b, c]], ["Id", "Operation"])
    assert text == (
        '"Id","Operation"\r\n"a","UserLoggedIn"\r\n"b","UserLoggedIn"\r\n"b","UserLoggedIn"\r\n"c","UserLoggedIn"\r\n'
    )
    # 8a returned nothing: 8b's -Append creates the file, header first
    assert sparrow_csv_text([[], [c]], ["Id"]) == '"Id"\r\n"c"\r\n'
    assert sparrow_csv_text([[], []], ["Id"]) == ""  # no call: no file


def test_empty_folders_array_repeats_the_previous_row() -> None:
    good = {"Id": "1", "Folders": [{"Path": "\\Inbox"}]}
    bad = {"Id": "2", "Folders": []}  # ($null).replace(...) fails: $DataProps keeps record 1's values
    text = sparrow_csv_text([[good, bad]], ["Id", "Folders"])
    assert text == '"Id","Folders"\r\n"1","{""Path"":""\\\\Inbox""}"\r\n"1","{""Path"":""\\\\Inbox""}"\r\n'
    # first record: an object without properties, so an empty header and empty lines
    assert sparrow_csv_text([[bad, good]], ["Id", "Folders"]) == "\r\n\r\n\r\n"


def test_domain_list_null_rule_and_join() -> None:
    domains = [
        {"Id": "contoso.com", "AuthenticationType": "Managed", "IsDefault": True, "IsRoot": True,
         "SupportedServices": ["Email", "Intune"], "AvailabilityStatus": None},
        {"Id": "eu.contoso.com", "AuthenticationType": "Federated", "IsDefault": False, "SupportedServices": None},
    ]  # fmt: skip
    item = listing_file("Domain_List.csv", domain_list_rows(domains), ",")
    assert item.data.decode() == (
        '"AuthenticationType","AvailabilityStatus","ForceDeleteState","IsAdminManaged","IsDefault","IsInitial",'
        '"IsRoot","IsVerified","Name","State","SupportedServices"\r\n'
        '"Managed",,,,"True",,"True",,"contoso.com",,"Email;Intune"\r\n'
        '"Federated",,,,"False",,,,"eu.contoso.com",,""\r\n'
    )
    assert listing_file("Domain_List.csv", domain_list_rows([]), ",").data == b""  # written, 0 bytes


GRAPH = {"Id": "g", "DisplayName": "Microsoft Graph", "ServicePrincipalType": "Application",
         "AppRoles": [{"Id": "R1", "Value": "Mail.Read"}, {"Id": "r2", "Value": "Files.Read.All"}]}  # fmt: skip


def _assignment(principal: str, name: str, role: str, resource: str = "Microsoft Graph") -> dict[str, Any]:
    return {"Id": "assignment-object-id", "AppRoleId": role, "PrincipalId": principal, "PrincipalDisplayName": name,
            "ResourceDisplayName": resource}  # fmt: skip


def test_graph_permissions_client_id_is_the_principal_and_unmatched_roles_repeat() -> None:
    sps = [GRAPH, {"Id": "sp1", "AppId": "app1", "DisplayName": "One", "ServicePrincipalType": "Application"},
           {"Id": "sp2", "AppId": "app2", "DisplayName": "Two", "ServicePrincipalType": "Application"},
           {"Id": "sp3", "DisplayName": "Managed identity", "ServicePrincipalType": "ManagedIdentity"}]  # fmt: skip
    assignments = {
        "sp1": [_assignment("sp1", "One", "r1"), _assignment("sp1", "One", "x", resource="Office 365 Exchange Online")],
        "sp2": [_assignment("sp2", "Two", "00000000-0000-0000-0000-000000000000"), _assignment("sp2", "Two", "R2")],
        "sp3": [_assignment("sp3", "Managed identity", "r1")],
    }
    item = listing_file("ApplicationGraphPermissions.csv", graph_permission_rows(sps, assignments), ",")
    assert item.data.decode() == (
        '"ApplicationDisplayName","ClientID","Value"\r\n'
        '"One","sp1","Mail.Read"\r\n'
        '"One","sp1","Mail.Read"\r\n'  # Two's default role matches nothing: $ListProps is One's row still
        '"Two","sp2","Files.Read.All"\r\n'
    )
    # nothing matched yet: New-Object -Property $null, an object without properties (empty header and line)
    first = graph_permission_rows(sps, {"sp2": assignments["sp2"]})
    assert listing_file("x.csv", first, ",").data == b'\r\n\r\n\r\n'
    assert listing_file("x.csv", graph_permission_rows(sps, {}), ",").data == b""  # written, 0 bytes
    # no "Microsoft Graph" SP listed: every Graph assignment is unmatched (there is no fallback role list)
    assert graph_permission_rows(sps[1:], assignments) == [None, None, None]


def test_excel_types_and_sheet_order(tmp_path: Path) -> None:
    assert excel_value("15") == 15.0 and excel_value("-1.5e3") == -1500.0 and excel_value("5%") == 0.05
    assert excel_value("True") is True and excel_value("FALSE") is False and excel_value("") is None
    assert excel_value("12345678901234567890") == 12345678901234500000.0  # 15 significant digits
    assert excel_value("1234E5678") == "1234E5678" and excel_value("100341A865E04993") == "100341A865E04993"
    assert excel_value("=HYPERLINK(\"x\")") == '=HYPERLINK("x")' and excel_value("2026-10-19T02:13:00") == (
        "2026-10-19T02:13:00"
    )
    assert sheet_name("PSLogin_Operations_Export.csv") == "PSLogin" and sheet_name("Domain_List.csv") == "Domain_List"
    names = ["AppUpdate_Operations_Export.csv", "ApplicationGraphPermissions.csv", "Domain_List.csv",
             "Domain_Operations_Export.csv", "AppRoleAssignment_Operations_Export.csv"]  # fmt: skip
    assert sheet_order(names) == [
        "Domain_Operations_Export.csv", "Domain_List.csv", "AppUpdate_Operations_Export.csv",
        "AppRoleAssignment_Operations_Export.csv", "ApplicationGraphPermissions.csv",
    ]  # fmt: skip
    a = tmp_path / "Consent_Operations_Export.csv"
    a.write_bytes(b'"Id","RecordType","ExternalAccess","Note"\r\n"x","8","False","=1+1"\r\n')
    b = tmp_path / "Domain_List.csv"
    b.write_bytes(b"")
    target = write_summary_workbook(tmp_path, [a, b])
    assert target is not None
    with zipfile.ZipFile(target) as z:
        book = z.read("xl/workbook.xml").decode()
        sheet1 = z.read("xl/worksheets/sheet1.xml").decode()
        sheet2 = z.read("xl/worksheets/sheet2.xml").decode()
    assert book.index('name="Domain_List"') < book.index('name="Consent"')
    assert "<f>" not in sheet2 and "=1+1" in sheet2  # text, never a formula
    assert '<c r="B2"><v>8</v></c>' in sheet2 and '<c r="C2" t="b"><v>0</v></c>' in sheet2
    assert "<c " not in sheet1  # the empty file's sheet is empty
    assert write_summary_workbook(tmp_path, []) is None


def test_formula_like_cells_are_counted_not_changed(tmp_path: Path) -> None:
    records = [{"Id": "=cmd|' /C calc'!A0", "Operation": "+x"}, {"Id": "-1", "Operation": "@SUM(1)"},
               {"Id": "\tx", "Operation": "ok"}, {"Id": "\rx", "Operation": "a=b"}]  # fmt: skip
    item = ual_file("PSLogin_Operations_Export.csv", [records], ["Id", "Operation"], ",")
    stats = item.write(tmp_path / item.rel)
    assert stats is not None and stats.rows == 4 and stats.formula_cells == 6
    assert b'"=cmd|\' /C calc\'!A0","+x"' in (tmp_path / item.rel).read_bytes()  # exact: not neutralised
    assert (tmp_path / item.rel).read_bytes() == item.data
    # no call wrote anything: no file; the listings are written anyway, empty
    assert ual_file("x.csv", [[]], ["Id"], ",").write(tmp_path / "x.csv") is None and not (tmp_path / "x.csv").exists()
    assert listing_file("Domain_List.csv", [], ",").write(tmp_path / "Domain_List.csv") is not None
    assert (tmp_path / "Domain_List.csv").read_bytes() == b""


EMOJI_70 = "\U0001f600" * 70


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (EMOJI_70, "\U0001f600" * 30),  # 4 bytes each: cut to 120 bytes on a character boundary
        ("..hidden", "hidden"),
        ("evil\u202egpj.exe", "evilgpj.exe"),  # bidi override removed
        ("a\x00b\x1fc\u200bd", "abcd"),
        ('Evil/App: "mail" <reader>?', "Evil_App_ _mail_ _reader__"),
        ("CON", "_CON"), ("con.txt", "_con.txt"), ("LPT9.log", "_LPT9.log"), ("com1", "_com1"), ("NUL ", "_NUL"),
        ("AUX.", "_AUX"), ("COM\u00b9", "_COM\u00b9"), ("lpt0.x", "_lpt0.x"),
        ("CON .txt", "_CON .txt"), ("CONSOLE", "CONSOLE"), ("report. . ", "report"),
        ("...", "fallback-id"), ("\u202e", "fallback-id"), ("a" * 300, "a" * 120),
    ],
)  # fmt: skip
def test_safe_folder_names(name: str, expected: str) -> None:
    result = safe_folder_name(name, "fallback-id")
    assert result == expected
    assert len(result.encode("utf-8")) <= 120


def test_app_investigation_layouts(tmp_path: Path) -> None:
    app = "aaaa0000-0000-0000-0000-000000000001"
    assert app_investigation_path(tmp_path, "MailItems", app, None) == (
        tmp_path / "AppInvestigations" / "MailItems_Operations_Export.csv"
    )
    path = app_investigation_path(tmp_path, "FileItems", app, EMOJI_70)
    assert path.parent.name == "\U0001f600" * 30 and path.name == f"FileItems_Operations_Export.{app}.csv"
    path.parent.mkdir(parents=True)  # the file system accepts it
    assert path.parent.is_dir()


# Fuzz: hostile AuditData values, our writer against the independent oracle.
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=12))
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=12,
)
_KEYS = ["Id", "UserId", "Actor", "Target", "ModifiedProperties", "ExtendedProperties", "RecordType", "ClientIP"]
_records = st.lists(
    st.dictionaries(st.sampled_from(_KEYS), _values, max_size=8),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(_records, min_size=1, max_size=3), delimiter=st.sampled_from([",", ";", "\t"]))
def test_writer_matches_the_independent_model(chunks: list[list[dict[str, Any]]], delimiter: str) -> None:
    columns = list(AAD_COLUMNS)
    ours = ps51.ascii_bytes(sparrow_csv_text(chunks, columns, delimiter))
    assert ours == (oracle.ual_file(chunks, columns, delimiter) or b"")  # b"": Sparrow writes no file


def test_records_powershell_51_cannot_convert_are_left_out_and_counted() -> None:
    ok = {"Id": "1"}
    twice = {"Id": "2", "ExtendedProperties": [{"Name": "a", "name": "b"}]}  # "duplicated keys"
    empty = {"Id": "3", "Actor": {"": 1}}  # a PSNoteProperty needs a name
    assert ps51.convert_from_json_fails(twice) and ps51.convert_from_json_fails(empty)
    assert not ps51.convert_from_json_fails(ok)
    item = ual_file("Consent_Operations_Export.csv", [[twice, ok, empty]], ["Id"], ",")
    assert item.text == '"Id"\r\n"1"\r\n' and item.unreadable == 2
    assert ual_file("x.csv", [[twice]], ["Id"], ",").text == ""  # $X is $null: no file

"""Sparrow-format exports: exact column sets and order, PowerShell Export-Csv quoting, folder layout."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

from mia_bridge.exports.sparrow import (
    AAD_COLUMNS,
    EXO2_COLUMNS,
    EXO_COLUMNS,
    SHAREPOINT_COLUMNS,
    GraphPermission,
    app_investigation_path,
    format_cell,
    safe_folder_name,
    sheet_name,
    write_domain_list,
    write_graph_permissions,
    write_sparrow_csv,
    write_summary_workbook,
)

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

BIND = {
    "CreationTime": "2022-10-25T18:23:04",
    "Id": "daf566de-0000-0000-0000-000000000000",
    "Operation": "MailItemsAccessed",
    "OrganizationId": "74d25673-0000-0000-0000-000000000000",
    "RecordType": 50,
    "ResultStatus": "Succeeded",
    "UserType": 0,
    "Workload": "Exchange",
    "UserId": "user@contoso.example",
    "ExternalAccess": False,
    "ClientIPAddress": "203.0.113.10",
    "SessionId": "e01c84f0-0000-0000-0000-000000000000",
    "OperationProperties": [{"Name": "MailAccessType", "Value": "Bind"}, {"Name": "IsThrottled", "Value": "False"}],
    "Folders": [{"FolderItems": [{"InternetMessageId": "<aaaa@contoso.example>"}], "Id": "LgAA", "Path": "\\Inbox"}],
    "OperationCount": 1,
}


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(","))


def test_column_sets_match_sparrow_exactly() -> None:
    assert _split(SPARROW_AAD) == AAD_COLUMNS and len(AAD_COLUMNS) == 26
    assert _split(SPARROW_EXO) == EXO_COLUMNS and len(EXO_COLUMNS) == 27
    assert _split(SPARROW_EXO2) == EXO2_COLUMNS and len(EXO2_COLUMNS) == 23
    assert _split(SPARROW_SHAREPOINT) == SHAREPOINT_COLUMNS and len(SHAREPOINT_COLUMNS) == 26
    assert "SessionId" not in EXO_COLUMNS and "Organization" in AAD_COLUMNS


def test_mailitems_csv_is_quoted_crlf_with_compact_json(tmp_path: Path) -> None:
    path = tmp_path / "MailItems_Operations_Export.csv"
    assert write_sparrow_csv(path, [BIND], EXO_COLUMNS) == 1
    raw = path.read_bytes()
    assert raw.startswith(b'"CreationTime","Id","Operation","OrganizationId",')
    assert raw.count(b"\r\n") == 2
    rows = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
    assert list(rows[0]) == list(EXO_COLUMNS)
    row = rows[0]
    assert row["ExternalAccess"] == "False"
    assert row["RecordType"] == "50"
    assert row["ClientAppId"] == ""  # absent property -> empty cell
    assert row["OperationProperties"] == (
        '[{"Name":"MailAccessType","Value":"Bind"},{"Name":"IsThrottled","Value":"False"}]'
    )
    # one folder: PowerShell unrolls the one-element array; angle brackets stripped as Sparrow does
    folders = json.loads(row["Folders"])
    assert folders["FolderItems"][0]["InternetMessageId"] == "aaaa@contoso.example"
    assert folders["Path"] == "\\Inbox"
    # every field quoted, including empty ones
    data_line = raw.split(b"\r\n")[1]
    assert data_line.count(b'""') >= 1 and data_line.startswith(b'"2022-10-25T18:23:04","daf566de')


def test_no_rows_writes_no_file(tmp_path: Path) -> None:
    path = tmp_path / "Consent_Operations_Export.csv"
    assert write_sparrow_csv(path, [], AAD_COLUMNS) == 0
    assert not path.exists()


def test_modified_properties_crlf_escapes_removed() -> None:
    value = [{"Name": "KeyDescription", "NewValue": "[\r\nabc\r\n]", "OldValue": "[]"}]
    cell = format_cell("ModifiedProperties", value)
    assert "\\r\\n" not in cell and json.loads(cell)["NewValue"] == "[abc]"
    assert format_cell("Actor", None) == ""
    assert format_cell("UserType", 0) == "0"


def test_safe_folder_names() -> None:
    assert safe_folder_name('Evil/App: "mail" <reader>?', "id") == "Evil_App_ _mail_ _reader__"
    assert safe_folder_name("...", "fallback-id") == "fallback-id"
    assert safe_folder_name("CON", "x") == "_CON"
    assert safe_folder_name("a" * 300, "x") == "a" * 100


def test_app_investigation_layout(tmp_path: Path) -> None:
    app = "11111111-2222-3333-4444-555555555555"
    assert app_investigation_path(tmp_path, "MailItems", app, None) == (
        tmp_path / "AppInvestigations" / "MailItems_Operations_Export.csv"
    )
    assert app_investigation_path(tmp_path, "FileItems", app, "Mail Sync/Tool") == (
        tmp_path / "AppInvestigations" / "Mail Sync_Tool" / f"FileItems_Operations_Export.{app}.csv"
    )


def test_domain_list_and_graph_permissions(tmp_path: Path) -> None:
    domains = [
        {"Id": "contoso.com", "AuthenticationType": "Federated", "IsVerified": True, "IsRoot": True,
         "SupportedServices": ["Email", "OfficeCommunicationsOnline"]},
    ]  # fmt: skip
    assert write_domain_list(tmp_path / "Domain_List.csv", domains) == 1
    rows = list(csv.DictReader((tmp_path / "Domain_List.csv").open(encoding="utf-8")))
    assert rows[0]["Name"] == "contoso.com"
    assert rows[0]["SupportedServices"] == "Email;OfficeCommunicationsOnline"
    assert rows[0]["IsVerified"] == "True" and rows[0]["ForceDeleteState"] == ""
    perms = [GraphPermission("Mail Reader", "aaaaaaaa-0000-0000-0000-000000000001", "Mail.Read")]
    write_graph_permissions(tmp_path / "ApplicationGraphPermissions.csv", perms)
    raw = (tmp_path / "ApplicationGraphPermissions.csv").read_bytes()
    assert raw == (
        b'"ApplicationDisplayName","ClientID","Value"\r\n'
        b'"Mail Reader","aaaaaaaa-0000-0000-0000-000000000001","Mail.Read"\r\n'
    )


def test_summary_workbook_sheets(tmp_path: Path) -> None:
    write_sparrow_csv(tmp_path / "MailItems_Operations_Export.csv", [BIND], EXO_COLUMNS)
    write_domain_list(tmp_path / "Domain_List.csv", [{"Id": "contoso.com"}])
    write_sparrow_csv(tmp_path / "AppInvestigations" / "x.csv", [BIND], EXO_COLUMNS)
    target = write_summary_workbook(tmp_path)
    assert target is not None and target.name == "Summary_Export.xlsx"
    with zipfile.ZipFile(target) as archive:
        workbook = archive.read("xl/workbook.xml").decode()
        strings = archive.read("xl/sharedStrings.xml").decode()
    assert 'name="MailItems"' in workbook and 'name="Domain_List"' in workbook
    assert workbook.count("<sheet ") == 2  # AppInvestigations not included, as in Sparrow
    assert "daf566de-0000-0000-0000-000000000000" in strings
    assert sheet_name("PSLogin_Operations_Export.csv") == "PSLogin"
    assert write_summary_workbook(tmp_path / "empty") is None

"""CISA Sparrow-compatible exports: the same file names, column sets and order, quoting and folder layout.

Sparrow (``cisagov/Sparrow``, archived 2022) builds each row from the AuditData JSON with a fixed,
ordered column list per workload and writes it with ``Export-Csv -NoTypeInformation``: every field
double-quoted, ``,`` delimiter, CRLF lines, header row quoted too. Nested values are compact JSON
(``ConvertTo-Json -Compress``); a one-element array comes out as a bare object because PowerShell
unrolls it through the pipeline; ``Folders`` has the ``<``/``>`` around InternetMessageIds removed and
``ModifiedProperties`` has literal ``\\r\\n`` sequences removed. We reproduce that so playbooks and the
Aviary dashboard keep working; the raw AuditData stays untouched in the evidence store.

Deliberate differences (fixes): nested JSON is written in full (Sparrow's default depth of 2 garbled
multi-folder records), ``AppInvestigations`` follows the export folder, display names are made safe
for file names, and ``ApplicationGraphPermissions.csv`` carries the real AppId.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mia_bridge.errors import ExportError

AAD_COLUMNS: tuple[str, ...] = (
    "CreationTime", "Id", "Operation", "Organization", "RecordType", "ResultStatus", "LogonError", "UserKey",
    "UserType", "Version", "Workload", "ClientIP", "ObjectId", "UserId", "AzureActiveDirectoryEventType",
    "ExtendedProperties", "ModifiedProperties", "Actor", "ActorContextId", "ActorIpAddress", "InterSystemsId",
    "IntraSystemId", "SupportTicketId", "Target", "TargetContextId", "ApplicationId",
)  # fmt: skip
EXO_COLUMNS: tuple[str, ...] = (
    "CreationTime", "Id", "Operation", "OrganizationId", "RecordType", "ResultStatus", "UserKey", "UserType",
    "Version", "Workload", "UserId", "AppId", "ClientAppId", "ClientIPAddress", "ClientInfoString",
    "ExternalAccess", "InternalLogonType", "LogonType", "LogonUserSid", "MailboxGuid", "MailboxOwnerSid",
    "MailboxOwnerUPN", "OperationProperties", "OrganizationName", "OriginatingServer", "Folders", "OperationCount",
)  # fmt: skip
EXO2_COLUMNS: tuple[str, ...] = (
    "CreationTime", "Id", "Operation", "OrganizationId", "RecordType", "ResultStatus", "UserKey", "UserType",
    "Version", "Workload", "ClientIP", "UserId", "ClientIPAddress", "ClientInfoString", "ExternalAccess",
    "InternalLogonType", "LogonType", "LogonUserSid", "MailboxGuid", "MailboxOwnerSid", "MailboxOwnerUPN",
    "OrganizationName", "OriginatingServer",
)  # fmt: skip
SHAREPOINT_COLUMNS: tuple[str, ...] = (
    "CreationTime", "Id", "Operation", "OrganizationId", "RecordType", "UserKey", "UserType", "Version",
    "Workload", "ClientIP", "ObjectId", "UserId", "ApplicationId", "CorrelationId", "EventSource", "ItemType",
    "ListId", "ListItemUniqueId", "Site", "UserAgent", "WebId", "HighPriorityMediaProcessing",
    "SourceFileExtension", "SiteUrl", "SourceFileName", "SourceRelativeUrl",
)  # fmt: skip
WORKLOAD_COLUMNS: dict[str, tuple[str, ...]] = {
    "AAD": AAD_COLUMNS,
    "EXO": EXO_COLUMNS,
    "EXO2": EXO2_COLUMNS,
    "SharePoint": SHAREPOINT_COLUMNS,
}
DOMAIN_LIST_COLUMNS: tuple[str, ...] = (
    "AuthenticationType", "AvailabilityStatus", "ForceDeleteState", "IsAdminManaged", "IsDefault", "IsInitial",
    "IsRoot", "IsVerified", "Name", "State", "SupportedServices",
)  # fmt: skip
GRAPH_PERMISSION_COLUMNS: tuple[str, ...] = ("ApplicationDisplayName", "ClientID", "Value")

# Columns Sparrow serialises with ConvertTo-Json -Compress rather than taking the scalar as-is.
_JSON_COLUMNS = frozenset(
    {"ExtendedProperties", "ModifiedProperties", "OperationProperties", "Folders", "Actor", "Target"}
)
APP_INVESTIGATIONS_DIR = "AppInvestigations"
SUMMARY_WORKBOOK = "Summary_Export.xlsx"
DOMAIN_LIST_CSV = "Domain_List.csv"
GRAPH_PERMISSIONS_CSV = "ApplicationGraphPermissions.csv"


@dataclass(frozen=True)
class SparrowFile:
    """One Sparrow CSV: its name (without ``.csv``) and the workload column set it uses."""

    name: str
    workload: str

    @property
    def columns(self) -> tuple[str, ...]:
        return WORKLOAD_COLUMNS[self.workload]


def _powershell_scalar(value: Any) -> str:
    """How Export-Csv prints a scalar: booleans as True/False, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _powershell_json(value: Any) -> str:
    """``$value | ConvertTo-Json -Compress``: a one-element array is unrolled to its element."""
    if value is None:
        return ""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, list) and not value:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def format_cell(column: str, value: Any) -> str:
    """The text Sparrow writes for ``column`` given the AuditData value."""
    if column not in _JSON_COLUMNS:
        return _powershell_scalar(value)
    text = _powershell_json(value)
    if column == "Folders":
        # Sparrow strips the JSON-escaped angle brackets; Python does not escape them, so strip both forms.
        text = text.replace("\\u003c", "").replace("\\u003e", "").replace("<", "").replace(">", "")
    elif column == "ModifiedProperties":
        text = text.replace("\\r\\n", "")
    return text


def sparrow_row(record: Mapping[str, Any], columns: Sequence[str]) -> list[str]:
    """One CSV row from one AuditData record; absent properties are empty cells, extra ones ignored."""
    return [format_cell(column, record.get(column)) for column in columns]


def write_sparrow_csv(path: Path, records: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> int:
    """Write records as a Sparrow CSV (UTF-8, all fields quoted, CRLF). Returns the row count.

    Like Sparrow, no file is written when there are no rows; the caller reports that.
    """
    rows = [sparrow_row(record, columns) for record in records]
    if not rows:
        return 0
    _write_quoted_csv(path, columns, rows)
    return len(rows)


def _write_quoted_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write Sparrow export: {exc.strerror or exc}", path=str(path)) from exc


_UNSAFE_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
)


def safe_folder_name(display_name: str, fallback: str) -> str:
    """A display name usable as a folder on Windows and POSIX (Sparrow used it unsanitised)."""
    name = _UNSAFE_CHARS.sub("_", display_name).strip().rstrip(". ")
    if not name or set(name) <= {"_", "."}:
        name = fallback
    if name.split(".")[0].upper() in _RESERVED:
        name = "_" + name
    return name[:100]


def app_investigation_path(export_dir: Path, kind: str, app_id: str, display_name: str | None) -> Path:
    """Where Sparrow puts an AppInvestigations file.

    ``kind`` is ``MailItems`` or ``FileItems``. Single-app mode (``display_name`` None) writes
    ``AppInvestigations/<kind>_Operations_Export.csv``; all-apps mode writes
    ``AppInvestigations/<safe DisplayName>/<kind>_Operations_Export.<AppId>.csv``.
    """
    base = export_dir / APP_INVESTIGATIONS_DIR
    if display_name is None:
        return base / f"{kind}_Operations_Export.csv"
    return base / safe_folder_name(display_name, app_id) / f"{kind}_Operations_Export.{app_id}.csv"


def _first(item: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in item and item[key] is not None:
            return item[key]
    return None


def write_domain_list(path: Path, domains: Iterable[Mapping[str, Any]]) -> int:
    """``Domain_List.csv`` from Get-MgDomain (or Get-AzureADDomain) objects; SupportedServices joined by ``;``."""
    rows: list[list[str]] = []
    for domain in domains:
        row: list[str] = []
        for column in DOMAIN_LIST_COLUMNS:
            if column == "Name":
                value = _first(domain, "Name", "Id")
            elif column == "SupportedServices":
                services = domain.get("SupportedServices") or []
                value = ";".join(str(s) for s in services) if isinstance(services, list) else services
            else:
                value = domain.get(column)
            row.append(_powershell_scalar(value))
        rows.append(row)
    if not rows:
        return 0
    _write_quoted_csv(path, DOMAIN_LIST_COLUMNS, rows)
    return len(rows)


@dataclass(frozen=True)
class GraphPermission:
    """One Microsoft Graph application permission held by a service principal."""

    app_display_name: str
    app_id: str
    value: str


def write_graph_permissions(path: Path, permissions: Iterable[GraphPermission]) -> int:
    """``ApplicationGraphPermissions.csv``; ``ClientID`` is the real AppId (Sparrow wrote the SP object id)."""
    rows = [[p.app_display_name, p.app_id, p.value] for p in permissions]
    if not rows:
        return 0
    _write_quoted_csv(path, GRAPH_PERMISSION_COLUMNS, rows)
    return len(rows)


def sheet_name(csv_name: str) -> str:
    """Sparrow's sheet name: the file name with ``_Operations_.*`` removed (Excel allows 31 characters)."""
    stem = csv_name[:-4] if csv_name.lower().endswith(".csv") else csv_name
    return re.sub(r"_Operations_.*", "", stem)[:31]


def write_summary_workbook(export_dir: Path) -> Path | None:
    """``Summary_Export.xlsx``: one sheet per top-level CSV (not AppInvestigations), without Excel.

    Cells are written as text so ids and timestamps are not reinterpreted. Returns None when there is
    no CSV to summarise.
    """
    import xlsxwriter  # deferred: only needed when the workbook is built

    csv_files = sorted(p for p in export_dir.glob("*.csv") if p.is_file())
    if not csv_files:
        return None
    target = export_dir / SUMMARY_WORKBOOK
    try:
        workbook = xlsxwriter.Workbook(str(target), {"strings_to_numbers": False, "strings_to_formulas": False})
        used: set[str] = set()
        for csv_path in csv_files:
            name = sheet_name(csv_path.name)
            base, counter = name, 2
            while name.lower() in used:
                suffix = f"_{counter}"
                name = base[: 31 - len(suffix)] + suffix
                counter += 1
            used.add(name.lower())
            sheet = workbook.add_worksheet(name)
            with csv_path.open(encoding="utf-8", newline="") as handle:
                for row_index, row in enumerate(csv.reader(handle)):
                    for col_index, cell in enumerate(row):
                        sheet.write_string(row_index, col_index, cell)
        workbook.close()
    except OSError as exc:
        raise ExportError(f"{target}: cannot write workbook: {exc}", path=str(target)) from exc
    return target

r"""CISA Sparrow's files, byte for byte as Sparrow.ps1 writes them under Windows PowerShell 5.1.

Sparrow (``cisagov/Sparrow``, Sparrow.ps1, archived 2022) builds each row from the AuditData JSON with
a fixed, ordered column list per workload (``Export-UALData``) and writes it with ``Export-Csv
-NoTypeInformation``. The PowerShell 5.1 text rules it relies on are modelled in ``ps51``; this module
applies them exactly as Sparrow's code does:

- plain columns: ``$Data.X`` as Export-Csv prints it (``$null`` an unquoted empty cell);
- ``ExtendedProperties``, ``Actor``, ``Target``, ``OperationProperties``:
  ``($Data.X | ConvertTo-Json -Compress | Out-String).Trim()``;
- ``ModifiedProperties``: the same with ``-replace "\\r\\n"`` (case-insensitive regex) before Out-String;
- ``Folders``: ``(($Data.Folders | ConvertTo-Json -Compress).replace("\u003c","")).replace("\u003e","")``;
  an empty array writes no JSON, the method call on $null fails, the ``[ordered]@{...}`` statement
  fails and ``$DataProps`` still holds the previous record's row, which is written again (an empty
  object when there is none, which gives an empty header);
- the searches feeding one file are written in Sparrow's order, the later ones ``-Append``-ed (no
  de-duplication); rows keep the order the service returned the records.

This is deliberately Sparrow's lossy format (JSON cut at depth 2, ASCII ``?`` for every non-ASCII
character): the full records are in ``evidence/`` and the analysis in ``analysis/``. Our only
departures: ``AppInvestigations`` follows the export folder and display names are made safe as
folder names (``safe_folder_name``).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mia_bridge.csv_safety import FORMULA_START
from mia_bridge.errors import ExportError
from mia_bridge.exports import ps51

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

# Columns Sparrow serialises with ConvertTo-Json -Compress rather than taking the value as-is.
JSON_COLUMNS = frozenset(
    {"ExtendedProperties", "ModifiedProperties", "OperationProperties", "Folders", "Actor", "Target"}
)
APP_INVESTIGATIONS_DIR = "AppInvestigations"
SUMMARY_WORKBOOK = "Summary_Export.xlsx"
DOMAIN_LIST_CSV = "Domain_List.csv"
GRAPH_PERMISSIONS_CSV = "ApplicationGraphPermissions.csv"
# Cells a spreadsheet would read as a formula (OWASP "CSV injection"): reported, never altered here.

Row = dict[str, str | None] | None  # one PSObject's properties in order; None: an object without any


class _StatementFailed(Exception):
    """The ``$DataProps = [ordered]@{...}`` statement raised (a method called on $null)."""


def json_cell(column: str, value: Any) -> str:
    """The text Sparrow writes for one of its JSON columns."""
    text = ps51.pipe_to_json(value)
    if column == "Folders":
        if isinstance(text, ps51.NoOutput):
            raise _StatementFailed("You cannot call a method on a null-valued expression.")
        text = text.replace("\\u003c", "").replace("\\u003e", "")
    elif column == "ModifiedProperties":
        # $null -replace ... is "" ; -replace is a case-insensitive regex
        text = re.sub(r"\\r\\n", "", "" if isinstance(text, ps51.NoOutput) else text, flags=re.IGNORECASE)
    return ps51.out_string_trim(text)


def format_cell(column: str, value: Any) -> str | None:
    """One cell as Sparrow writes it (None: an unquoted empty cell)."""
    if column in JSON_COLUMNS:
        return json_cell(column, value)
    return ps51.csv_value(value)


def sparrow_row(record: Mapping[str, Any], columns: Sequence[str]) -> dict[str, str | None]:
    """One record's ``[ordered]@{...}``; raises _StatementFailed where PowerShell's statement fails."""
    return {column: format_cell(column, ps51.get_property(record, column)) for column in columns}


def ual_rows(records: Iterable[Any], columns: Sequence[str]) -> Iterator[Row]:
    """Export-UALData's ``$DataArr`` for one call (a failed row repeats the previous one, as in Sparrow)."""
    previous: Row = None
    for record in records:
        with contextlib.suppress(_StatementFailed):  # then $DataProps keeps the previous record's value
            previous = sparrow_row(record if isinstance(record, Mapping) else {}, columns)
        yield previous


Line = tuple[str, bool, Row]  # one line of text (CRLF included), whether it is the header, its row


def object_lines(rows: Iterable[Row], delimiter: str, header: list[str] | None = None) -> Iterator[Line]:
    """``$rows | Export-Csv -NoTypeInformation``, line by line; ``header`` is an -Append target's header.

    The first object's property names are the header (an object without properties gives an empty
    one; the header line carries that first row); a later object is written with those names, a
    missing property as $null.
    """
    for row in rows:
        if header is None:
            header = list(row or {})
            yield ps51.csv_line(header, delimiter) + "\r\n", True, row
        values = row or {}
        yield ps51.csv_line([values.get(name) for name in header], delimiter) + "\r\n", False, row


@dataclass
class Unreadable:
    """Records left out of one pass over a Sparrow CSV's searches (``ual_lines``) because 5.1's
    ConvertFrom-Json rejects their AuditData; counted while the lines are produced, so no extra pass."""

    count: int = 0

    def readable(self, records: Iterable[Any]) -> Iterator[Any]:
        for record in records:
            if ps51.convert_from_json_fails(record):
                self.count += 1
            else:
                yield record


def ual_lines(
    chunks: Sequence[Iterable[Any]], columns: Sequence[str], delimiter: str = ",", unreadable: Unreadable | None = None,
) -> Iterator[Line]:
    """One Sparrow CSV fed by several Export-UALData calls (the first creates the file, the rest -Append).

    A call is skipped when its search returned nothing (``If ($null -ne $X)``); an -Append to a file not
    yet created writes the header. No line: no call wrote anything, so Sparrow writes no file. A record
    5.1's ConvertFrom-Json rejects is not among the call's input (counted in ``unreadable`` once the lines
    are all produced). Each call's records are read as they are written (a MailItemsAccessed search's are
    streamed, never held).
    """
    header: list[str] | None = None
    tally = unreadable if unreadable is not None else Unreadable()
    tally.count = 0
    for records in chunks:
        readable: Iterator[Any] = tally.readable(records)
        first = next(readable, None)
        if first is None:
            continue
        readable = itertools.chain((first,), readable)
        for line, is_header, row in object_lines(ual_rows(readable, columns), delimiter, header):
            if is_header:
                header = list(row or {})
            yield line, is_header, row


def sparrow_csv_text(chunks: Sequence[Iterable[Any]], columns: Sequence[str], delimiter: str = ",") -> str:
    """The whole text of one Sparrow CSV (see ``ual_lines``); empty when Sparrow writes no file."""
    return "".join(line for line, _, _ in ual_lines(chunks, columns, delimiter))


def domain_list_rows(domains: Iterable[Mapping[str, Any]]) -> list[Row]:
    """Get-AzureDomains' objects, from Get-MgDomain output (``Name`` is Graph's ``Id``)."""
    rows: list[Row] = []
    for domain in domains:
        name = ps51.get_property(domain, "Name")
        if name is None:
            name = ps51.get_property(domain, "Id")
        row: dict[str, str | None] = {}
        for column in DOMAIN_LIST_COLUMNS:
            if column == "Name":
                row[column] = ps51.csv_value(name)
            elif column == "SupportedServices":  # ($Domain.SupportedServices -join ';'): never $null
                services = ps51.get_property(domain, column)
                items = services if isinstance(services, list | tuple) else ([] if services is None else [services])
                row[column] = ";".join(ps51.to_string(s) for s in items)
            else:
                row[column] = ps51.csv_value(ps51.get_property(domain, column))
        rows.append(row)
    return rows


def _ps_eq(left: Any, right: str) -> bool:
    """PowerShell ``-eq`` against a string: case-insensitive text comparison; $null never equals."""
    return left is not None and ps51.to_string(left).lower() == right.lower()


def graph_permission_rows(
    service_principals: Sequence[Mapping[str, Any]], assignments: Mapping[str, Sequence[Mapping[str, Any]]]
) -> list[Row]:
    """Get-AzureSPAppRoles, from Graph: ``assignments`` maps a service principal's Id to its app role
    assignments (Get-MgServicePrincipalAppRoleAssignment, Graph's ``AppRoleId`` being AzureAD's ``Id``).

    As Sparrow: the Graph roles are the AppRoles of every SP displayed "Microsoft Graph"; ``ClientID``
    is the assignment's PrincipalId (the SP's object id); an assignment whose role matches none writes
    the previous row again (``$ListProps`` is not reset), or an object without properties before any.
    """
    graph_roles: list[Mapping[str, Any]] = []
    for sp in service_principals:
        if _ps_eq(ps51.get_property(sp, "DisplayName"), "Microsoft Graph"):
            roles = ps51.get_property(sp, "AppRoles")
            graph_roles.extend(r for r in (roles if isinstance(roles, list) else [roles] if roles else [])
                               if isinstance(r, Mapping))  # fmt: skip
    rows: list[Row] = []
    props: Row = None
    for sp in service_principals:
        if not _ps_eq(ps51.get_property(sp, "ServicePrincipalType"), "Application"):
            continue
        for assignment in assignments.get(str(ps51.get_property(sp, "Id") or ""), []):
            if not _ps_eq(ps51.get_property(assignment, "ResourceDisplayName"), "Microsoft Graph"):
                continue
            role_id = ps51.get_property(assignment, "AppRoleId")
            for role in graph_roles:
                if role_id is not None and _ps_eq(ps51.get_property(role, "Id"), ps51.to_string(role_id)):
                    props = {
                        "ApplicationDisplayName": ps51.csv_value(ps51.get_property(assignment, "PrincipalDisplayName")),
                        "ClientID": ps51.csv_value(ps51.get_property(assignment, "PrincipalId")),
                        "Value": ps51.csv_value(ps51.get_property(role, "Value")),
                    }
            rows.append(dict(props) if props is not None else None)
    return rows


def formula_like_cells(row: Row) -> int:
    """How many cells of a row start with a character a spreadsheet reads as a formula."""
    return sum(1 for value in (row or {}).values() if value and value.startswith(FORMULA_START))


@dataclass
class SparrowCsv:
    """One file of the sparrow/ folder: where it goes and how to produce its lines (streamed when written)."""

    rel: str
    lines: Callable[[], Iterator[Line]]
    always: bool = False  # Export-Csv ran: the file exists even without a line (0 bytes)
    left_out: Unreadable | None = None  # counted by the last pass over ``lines`` (``text`` or ``write``)

    @property
    def unreadable(self) -> int:
        """Records the last pass left out because 5.1's ConvertFrom-Json rejects them."""
        return self.left_out.count if self.left_out is not None else 0

    @property
    def text(self) -> str:
        return "".join(line for line, _, _ in self.lines())

    @property
    def data(self) -> bytes:
        return ps51.ascii_bytes(self.text)

    def write(self, path: Path) -> WriteStats | None:
        """Stream the file to ``path`` (ASCII, as 5.1 writes it); None when Sparrow writes no file."""
        stats = WriteStats()
        handle = None
        try:
            for line, is_header, row in self.lines():
                if handle is None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    handle = path.open("wb")
                handle.write(ps51.ascii_bytes(line))
                if not is_header:
                    stats.rows += 1
                    stats.formula_cells += formula_like_cells(row)
            if handle is None:
                if not self.always:
                    return None
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"")
        except OSError as exc:
            raise ExportError(f"{path}: cannot write Sparrow export: {exc.strerror or exc}", path=str(path)) from exc
        finally:
            if handle is not None:
                handle.close()
        return stats


@dataclass
class WriteStats:
    rows: int = 0
    formula_cells: int = 0


def ual_file(rel: str, chunks: Sequence[Iterable[Any]], columns: Sequence[str], delimiter: str) -> SparrowCsv:
    left_out = Unreadable()
    return SparrowCsv(rel, lambda: ual_lines(chunks, columns, delimiter, left_out), left_out=left_out)


def listing_file(rel: str, rows: list[Row], delimiter: str) -> SparrowCsv:
    """Domain_List / ApplicationGraphPermissions: always written, 0 bytes when there is no row."""
    return SparrowCsv(rel, lambda: object_lines(rows, delimiter), always=True)


# Windows: reserved device names (with or without an extension; the superscript digits count too,
# learn.microsoft.com/windows/win32/fileio/naming-a-file), reserved characters, no trailing dot/space.
_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{dev}{n}" for dev in ("COM", "LPT") for n in (*"0123456789", "\u00b9", "\u00b2", "\u00b3")}
)
_RESERVED_CHARS = re.compile(r'[<>:"/\\|?*]')
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})  # controls, bidi/format, unassigned
MAX_FOLDER_BYTES = 120


def safe_folder_name(display_name: str, fallback: str) -> str:
    """A display name usable as one folder name on Windows and POSIX (Sparrow used it unsanitised).

    Control, bidi and other format characters are dropped, reserved characters become ``_``, leading
    dots and spaces and trailing dots and spaces go, the result is cut to 120 UTF-8 bytes on a
    character boundary, and a reserved device name gets a ``_`` prefix. Nothing left: ``fallback``.
    """
    name = "".join(ch for ch in display_name if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    name = _RESERVED_CHARS.sub("_", name)
    name = _trim(name)
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_FOLDER_BYTES:
        name = _trim(encoded[:MAX_FOLDER_BYTES].decode("utf-8", errors="ignore"))
    if not name or set(name) <= {"_"}:
        name = fallback
    stem = name.split(".", 1)[0].rstrip(" ").upper()
    if stem in _RESERVED_NAMES:
        name = "_" + name
        if len(name.encode("utf-8")) > MAX_FOLDER_BYTES:
            name = _trim(name.encode("utf-8")[:MAX_FOLDER_BYTES].decode("utf-8", errors="ignore"))
    return name


def _trim(name: str) -> str:
    return name.lstrip(". ").rstrip(". ")


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

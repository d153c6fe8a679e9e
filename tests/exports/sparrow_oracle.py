"""An independent, deliberately small model of what Sparrow.ps1 writes under Windows PowerShell 5.1.

Written from the rules (Sparrow.ps1's Export-UALData / Get-AzureDomains / Get-AzureSPAppRoles and
5.1's ConvertTo-Json / Export-Csv), NOT from mia_bridge.exports: it shares no code with the writer and
takes another route (Python's json.dumps plus 5.1's extra escapes; UTF-16 code units counted by
encoding). The golden tests compare our sparrow/ files with what this derives from the case's raw
evidence and directory output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

# ruff: noqa: SIM905 -- the column lists are kept as the text Sparrow.ps1 has them
AAD = ("CreationTime Id Operation Organization RecordType ResultStatus LogonError UserKey UserType Version Workload "
       "ClientIP ObjectId UserId AzureActiveDirectoryEventType ExtendedProperties ModifiedProperties Actor "
       "ActorContextId ActorIpAddress InterSystemsId IntraSystemId SupportTicketId Target TargetContextId "
       "ApplicationId").split()  # fmt: skip
EXO = ("CreationTime Id Operation OrganizationId RecordType ResultStatus UserKey UserType Version Workload UserId "
       "AppId ClientAppId ClientIPAddress ClientInfoString ExternalAccess InternalLogonType LogonType LogonUserSid "
       "MailboxGuid MailboxOwnerSid MailboxOwnerUPN OperationProperties OrganizationName OriginatingServer Folders "
       "OperationCount").split()  # fmt: skip
EXO2 = ("CreationTime Id Operation OrganizationId RecordType ResultStatus UserKey UserType Version Workload ClientIP "
        "UserId ClientIPAddress ClientInfoString ExternalAccess InternalLogonType LogonType LogonUserSid MailboxGuid "
        "MailboxOwnerSid MailboxOwnerUPN OrganizationName OriginatingServer").split()  # fmt: skip
SHAREPOINT = ("CreationTime Id Operation OrganizationId RecordType UserKey UserType Version Workload ClientIP "
              "ObjectId UserId ApplicationId CorrelationId EventSource ItemType ListId ListItemUniqueId Site "
              "UserAgent WebId HighPriorityMediaProcessing SourceFileExtension SiteUrl SourceFileName "
              "SourceRelativeUrl").split()  # fmt: skip
JSONISH = {"ExtendedProperties", "ModifiedProperties", "Actor", "Target", "OperationProperties", "Folders"}
DOMAIN = ("AuthenticationType AvailabilityStatus ForceDeleteState IsAdminManaged IsDefault IsInitial IsRoot "
          "IsVerified Name State SupportedServices").split()  # fmt: skip

# Sparrow.ps1's searches in its order: (evidence name, file, columns); 8a creates PSLogin, 8b/8c append.
TENANT_SEARCHES = [
    ("sparrow-01-domain", "Domain_Operations_Export.csv", AAD),
    ("sparrow-02-app-update", "AppUpdate_Operations_Export.csv", AAD),
    ("sparrow-03-service-principal", "ServicePrincipal_Operations_Export.csv", AAD),
    ("sparrow-04-app-role", "AppRoleAssignment_Operations_Export.csv", AAD),
    ("sparrow-05-consent", "Consent_Operations_Export.csv", AAD),
    ("sparrow-06-saml", "SAMLToken_Operations_Export.csv", AAD),
    ("sparrow-07-ps-mailbox", "PSMailbox_Operations_Export.csv", EXO2),
    ("sparrow-08a-ps-exo-app", "PSLogin_Operations_Export.csv", AAD),
    ("sparrow-08b-ps-aad-app", "PSLogin_Operations_Export.csv", AAD),
    ("sparrow-08c-winrm", "PSLogin_Operations_Export.csv", AAD),
]


def _scalar_text(v: Any) -> str:
    """A value as PowerShell prints it inside @{...} or a joined array (no recursion into containers)."""
    if v is None:
        return ""
    if v is True or v is False:
        return str(v)
    if isinstance(v, dict):
        return ""
    if isinstance(v, list):
        return "System.Object[]"
    return str(v)


def _ps_text(v: Any) -> str:
    if isinstance(v, dict):
        return "@{" + "; ".join(f"{k}={_scalar_text(x)}" for k, x in v.items()) + "}" if v else ""
    if isinstance(v, list):
        return " ".join(_scalar_text(x) for x in v)
    return _scalar_text(v)


def _cut(v: Any, level: int) -> Any:
    """Replace containers deeper than ConvertTo-Json's default depth 2 by their PowerShell text."""
    if isinstance(v, dict | list) and level > 2:
        return _ps_text(v)
    if isinstance(v, dict):
        return {k: _cut(x, level + 1) for k, x in v.items()}
    if isinstance(v, list):
        return [_cut(x, level + 1) for x in v]
    return v


_EXTRA = {"'": "\\u0027", "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\x85": "\\u0085", "\u2028": "\\u2028",
          "\u2029": "\\u2029", "\x7f": "\x7f"}  # fmt: skip


def convert_to_json_piped(v: Any) -> str | None:
    """``$v | ConvertTo-Json -Compress`` (None: no output)."""
    if isinstance(v, list):
        if len(v) == 0:
            return None
        if len(v) == 1:
            v = v[0]
    text = json.dumps(_cut(v, 0), ensure_ascii=False, separators=(",", ":"))
    return "".join(_EXTRA.get(ch, ch) for ch in text)


def cell(column: str, record: Mapping[str, Any]) -> str | None:
    value = next((x for k, x in record.items() if k.lower() == column.lower()), None)
    if column not in JSONISH:
        if value is None:
            return None
        return "System.Object[]" if isinstance(value, list) else _ps_text(value)
    out = convert_to_json_piped(value)
    if column == "Folders":
        assert out is not None, "an empty Folders array: outside this oracle"
        out = out.replace("\\u003c", "").replace("\\u003e", "")
    if column == "ModifiedProperties":
        out = re.sub(r"(?i)\\r\\n", "", out or "")
    return (out or "").strip()


def csv_text(header: Sequence[str] | None, rows: list[list[str | None]], delimiter: str) -> str:
    def q(x: str | None) -> str:
        return "" if x is None else '"' + x.replace('"', '""') + '"'

    lines = [] if header is None else [delimiter.join(q(h) for h in header)]
    lines += [delimiter.join(q(x) for x in row) for row in rows]
    return "".join(line + "\r\n" for line in lines)


def to_ascii(text: str) -> bytes:
    return b"".join(
        ch.encode() if ord(ch) < 128 else b"?" * (len(ch.encode("utf-16-le", "surrogatepass")) // 2) for ch in text
    )


def _rejected(v: Any) -> bool:
    """5.1's ConvertFrom-Json fails on names equal ignoring case, or an empty name, at any level."""
    if isinstance(v, dict):
        keys = [k.lower() for k in v]
        return "" in keys or len(keys) > len(set(keys)) or any(_rejected(x) for x in v.values())
    return isinstance(v, list) and any(_rejected(x) for x in v)


def ual_file(chunks: list[list[dict[str, Any]]], columns: Sequence[str], delimiter: str) -> bytes | None:
    text, started = "", False
    for records in chunks:
        records = [r for r in records if not _rejected(r)]
        if not records:
            continue
        rows = [[cell(c, r) for c in columns] for r in records]
        text += csv_text(None if started else columns, rows, delimiter)
        started = True
    return to_ascii(text) if started else None


def flagged_domains(domains: list[dict[str, Any]], federation: Mapping[str, Any]) -> list[str]:
    """Roots federated with an IdP whose MFA Entra ID does not accept, then their federated children."""
    def fed(d: dict[str, Any]) -> bool:
        return str(d.get("AuthenticationType")).lower() == "federated"

    roots = [d["Id"].lower() for d in domains if fed(d) and d.get("IsRoot") is not False]
    bad = []
    for root in roots:
        configs = (federation.get(root) or {}).get("output") or []
        behaviours = [c.get("FederatedIdpMfaBehavior") for c in configs]
        if not configs or any(b not in ("acceptIfMfaDoneByFederatedIdp", "enforceMfaByFederatedIdp")
                              for b in behaviours):  # fmt: skip
            bad.append(root)
    children = [d["Id"].lower() for d in domains if fed(d) and d.get("IsRoot") is False
                and any(d["Id"].lower().endswith("." + r) for r in bad)]  # fmt: skip
    return bad + children


def domain_list(domains: list[dict[str, Any]], delimiter: str) -> bytes:
    if not domains:
        return b""
    rows = []
    for d in domains:
        row: list[str | None] = []
        for c in DOMAIN:
            if c == "SupportedServices":
                row.append(";".join(d.get(c) or []))
            else:
                v = d.get("Id") if c == "Name" else d.get(c)
                row.append(None if v is None else _ps_text(v))
        rows.append(row)
    return to_ascii(csv_text(DOMAIN, rows, delimiter))


def graph_permissions(sps: list[dict[str, Any]], assignments: Mapping[str, list[dict[str, Any]]],
                      delimiter: str) -> bytes:  # fmt: skip
    roles = [r for sp in sps if str(sp.get("DisplayName")).lower() == "microsoft graph"
             for r in sp.get("AppRoles") or []]  # fmt: skip
    rows: list[list[str | None]] = []
    for sp in sps:
        if str(sp.get("ServicePrincipalType")).lower() != "application":
            continue
        for a in assignments.get(sp["Id"], []):
            if str(a.get("ResourceDisplayName")).lower() != "microsoft graph":
                continue
            match = [r for r in roles if str(r["Id"]).lower() == str(a.get("AppRoleId")).lower()]
            assert match, "an unmatched Graph role: outside this oracle (Sparrow repeats the previous row)"
            rows.append([a.get("PrincipalDisplayName"), a.get("PrincipalId"), match[-1].get("Value")])
    if not rows:
        return b""
    return to_ascii(csv_text(["ApplicationDisplayName", "ClientID", "Value"], rows, delimiter))

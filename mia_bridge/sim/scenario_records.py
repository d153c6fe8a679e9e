"""AuditData record builders with the real schemas (exchange-platform-facts §1, Management Activity
API common / Exchange mailbox / Azure AD / SharePoint schemas). Field order follows real records."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# First-party application ids seen in real records.
APP_GRAPH = "00000003-0000-0000-c000-000000000000"
APP_EXCHANGE = "00000002-0000-0ff1-ce00-000000000000"
APP_OFFICE = "d3590ed6-52b3-4102-aeff-aad2292ab01c"  # Microsoft Office (Outlook desktop)
APP_NEW_OUTLOOK = "5d661950-3475-41cd-a2c3-d671a3162bc1"
APP_OFFICE_PORTAL = "4765445b-32c6-49b0-83e6-1d93765276ca"
APP_TEAMS = "1fec8e78-bce4-4aaf-ab1b-5451cc387264"
APP_EXO_POWERSHELL = "a0c73c16-a7e3-4564-9a95-2bdf47383716"
APP_EXO_POWERSHELL_V3 = "fb78d390-0c51-40cd-8e17-fdbfab77341b"
APP_AAD_POWERSHELL = "1b730954-1685-4b74-9bfd-dac224a7b894"
APP_SHAREPOINT = "00000003-0000-0ff1-ce00-000000000000"

CLIENT_OWA = "Client=OWA;Action=ViaProxy"
CLIENT_OUTLOOK = "Client=MSExchangeRPC"
CLIENT_REST = "Client=REST;Client=RESTSystem;;"
CLIENT_POWERSHELL = "Client=Microsoft.Exchange.Powershell; Microsoft WinRM Client"

BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 "
    "Safari/537.36 Edg/130.0.0.0"
)


def clean(text: str) -> str:
    """Random identifiers must not spell "16457": Sparrow's SAML search is FreeText "16457", and only the
    records meant to match it may."""
    return text.replace("16457", "16458")


def iso(moment: datetime | str) -> str:
    """AuditData CreationTime: UTC, seconds, no zone suffix (as real records). Strings pass through
    (templates use placeholders)."""
    if isinstance(moment, str):
        return moment
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class User:
    upn: str
    display_name: str
    object_id: str
    mailbox_guid: str
    sid: str
    puid: str  # UserKey of Exchange records
    home_ip: str
    office_ip: str
    messages: dict[str, list[str]] = field(default_factory=dict)  # folder path -> InternetMessageIds
    folder_ids: dict[str, str] = field(default_factory=dict)  # folder path -> store id


class RecordFactory:
    """Builds AuditData dicts for one tenant; every record gets a fresh GUID Id from the seeded rng."""

    def __init__(self, organization: str, tenant_id: str, rng: random.Random) -> None:
        self.organization = organization
        self.tenant_id = tenant_id
        self.rng = rng
        self.server = "CY5PR05MB" + "".join(rng.choice("0123456789") for _ in range(4))

    def guid(self) -> str:
        text = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return clean(text)

    def message_id(self) -> str:
        """A realistic Exchange Online InternetMessageId."""
        text = f"<{self.server}{self.rng.getrandbits(144):036X}@{self.server}.namprd05.prod.outlook.com>"
        return clean(text)

    def size(self) -> int:
        """A message size in bytes (never spelling Sparrow's "16457")."""
        value = self.rng.randint(4_000, 120_000)
        return value if "16457" not in str(value) else value + 1

    def store_id(self) -> str:
        tail = "".join(
            self.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(40)
        )
        return clean(f"LgAAAAAM7KyT{tail}AAAB")

    def _common(
        self,
        when: datetime | str,
        operation: str,
        record_type: int,
        workload: str,
        user_id: str,
        user_key: str,
        user_type: int = 0,
        result: str = "Succeeded",
    ) -> dict[str, Any]:
        return {
            "CreationTime": iso(when),
            "Id": self.guid(),
            "Operation": operation,
            "OrganizationId": self.tenant_id,
            "RecordType": record_type,
            "ResultStatus": result,
            "UserKey": user_key,
            "UserType": user_type,
            "Version": 1,
            "Workload": workload,
        }

    def _mailbox(
        self,
        owner: User,
        logon_user: User | None,
        ip: str,
        client_info: str,
        app_id: str,
        client_app_id: str,
        session_id: str | None,
        logon_type: int,
    ) -> dict[str, Any]:
        actor = logon_user or owner
        data: dict[str, Any] = {
            "UserId": actor.upn,
            "AppId": app_id,
            "ClientAppId": client_app_id,
            "ClientIPAddress": ip,
            "ClientInfoString": client_info,
            "ExternalAccess": False,
            "InternalLogonType": 0,
            "LogonType": logon_type,
            "LogonUserSid": actor.sid,
            "MailboxGuid": owner.mailbox_guid,
            "MailboxOwnerSid": owner.sid,
            "MailboxOwnerUPN": owner.upn,
            "OrganizationName": self.organization,
            "OriginatingServer": f"{self.server} (15.20.8200.000)\r\n",
        }
        if session_id:
            data["SessionId"] = session_id
        return data

    def bind(
        self,
        when: datetime | str,
        owner: User,
        folders: dict[str, list[str]],
        ip: str,
        *,
        client_info: str = CLIENT_OWA,
        app_id: str = APP_EXCHANGE,
        client_app_id: str = "",
        session_id: str | None = None,
        throttled: bool = False,
        logon_user: User | None = None,
        logon_type: int = 0,
    ) -> dict[str, Any]:
        """MailItemsAccessed bind: RecordType 50 with Folders[].FolderItems[].InternetMessageId."""
        record = self._common(when, "MailItemsAccessed", 50, "Exchange", (logon_user or owner).upn, owner.puid)
        record.update(self._mailbox(owner, logon_user, ip, client_info, app_id, client_app_id, session_id, logon_type))
        record["OperationProperties"] = [
            {"Name": "MailAccessType", "Value": "Bind"},
            {"Name": "IsThrottled", "Value": "True" if throttled else "False"},
        ]
        record["Folders"] = [
            {
                "FolderItems": [
                    {"InternetMessageId": mid, "SizeInBytes": self.size()} for mid in ids
                ],
                "Id": owner.folder_ids.get(path) or self.store_id(),
                "Path": path,
            }
            for path, ids in folders.items()
        ]
        record["OperationCount"] = sum(len(ids) for ids in folders.values())
        return record

    def sync_item(
        self,
        when: datetime | str,
        owner: User,
        folder: str,
        ip: str,
        *,
        client_info: str = CLIENT_OUTLOOK,
        app_id: str = APP_OFFICE,
        session_id: str | None = None,
        logon_user: User | None = None,
        logon_type: int = 0,
    ) -> dict[str, Any]:
        """MailItemsAccessed sync, RecordType 2 shape with Item.ParentFolder (Outlook desktop)."""
        record = self._sync_record(when, 2, owner, ip, client_info, app_id, session_id, logon_user, logon_type)
        folder_id = owner.folder_ids.get(folder) or self.store_id()
        record["Item"] = {
            "Id": folder_id,
            "ParentFolder": {"Id": folder_id, "Name": folder.lstrip("\\"), "Path": folder},
        }
        return record

    def _sync_record(
        self, when: datetime | str, record_type: int, owner: User, ip: str, client_info: str, app_id: str,
        session_id: str | None, logon_user: User | None, logon_type: int,
    ) -> dict[str, Any]:
        """The part both sync shapes share: the mailbox access fields and MailAccessType=Sync."""
        record = self._common(when, "MailItemsAccessed", record_type, "Exchange", (logon_user or owner).upn,
                              owner.puid)
        record.update(self._mailbox(owner, logon_user, ip, client_info, app_id, "", session_id, logon_type))
        record["OperationProperties"] = [
            {"Name": "MailAccessType", "Value": "Sync"},
            {"Name": "IsThrottled", "Value": "False"},
        ]
        return record

    def sync_folders(
        self,
        when: datetime | str,
        owner: User,
        folders: list[str],
        ip: str,
        *,
        client_info: str = CLIENT_OUTLOOK,
        app_id: str = APP_OFFICE,
        session_id: str | None = None,
        logon_user: User | None = None,
        logon_type: int = 0,
    ) -> dict[str, Any]:
        """MailItemsAccessed sync, RecordType 50 shape with Folders[].Path and no FolderItems."""
        record = self._sync_record(when, 50, owner, ip, client_info, app_id, session_id, logon_user, logon_type)
        record["Folders"] = [{"Id": owner.folder_ids.get(p) or self.store_id(), "Path": p} for p in folders]
        record["OperationCount"] = len(folders)
        return record

    def mailbox_login(
        self,
        when: datetime | str,
        owner: User,
        ip: str,
        *,
        client_info: str = CLIENT_OUTLOOK,
        app_id: str = APP_OFFICE,
        session_id: str | None = None,
        logon_user: User | None = None,
        logon_type: int = 0,
    ) -> dict[str, Any]:
        record = self._common(when, "MailboxLogin", 2, "Exchange", (logon_user or owner).upn, owner.puid)
        record.update(self._mailbox(owner, logon_user, ip, client_info, app_id, "", session_id, logon_type))
        return record

    def user_logged_in(
        self,
        when: datetime | str,
        user: User,
        ip: str,
        *,
        app_id: str = APP_OFFICE_PORTAL,
        user_agent: str = BROWSER_UA,
        auth_method: str = "1",
        request_type: str = "OAuth2:Authorize",
        operation: str = "UserLoggedIn",
        logon_error: str = "",
    ) -> dict[str, Any]:
        """Entra sign-in as the UAL records it: RecordType 15, Workload AzureActiveDirectory."""
        failed = operation == "UserLoginFailed"
        record = self._common(
            when, operation, 15, "AzureActiveDirectory", user.upn, user.puid, result="Failed" if failed else "Success"
        )
        record.update(
            {
                "AzureActiveDirectoryEventType": 1,
                "ExtendedProperties": [
                    {"Name": "ResultStatusDetail", "Value": "Success" if not failed else "UserError"},
                    {"Name": "UserAgent", "Value": user_agent},
                    {"Name": "UserAuthenticationMethod", "Value": auth_method},
                    {"Name": "RequestType", "Value": request_type},
                ],
                "ModifiedProperties": [],
                "Actor": [{"ID": user.object_id, "Type": 0}, {"ID": user.upn, "Type": 5}],
                "ActorContextId": self.tenant_id,
                "ActorIpAddress": ip,
                "InterSystemsId": self.guid(),
                "IntraSystemId": self.guid(),
                "SupportTicketId": "",
                "Target": [{"ID": app_id, "Type": 0}],
                "TargetContextId": self.tenant_id,
                "ApplicationId": app_id,
                "ClientIP": ip,
                "ObjectId": app_id,
                "UserId": user.upn,
            }
        )
        if failed:
            record["LogonError"] = logon_error or "InvalidUserNameOrPassword"
        return record

    def directory_change(
        self,
        when: datetime | str,
        operation: str,
        actor: User,
        ip: str,
        *,
        target_name: str,
        target_id: str,
        modified: list[tuple[str, str, str]] | None = None,
        extra_targets: list[dict[str, Any]] | None = None,
        user_agent: str = BROWSER_UA,
    ) -> dict[str, Any]:
        """An Entra directory audit event (consent, credentials, federation): RecordType 8."""
        record = self._common(when, operation, 8, "AzureActiveDirectory", actor.upn, actor.puid, result="Success")
        record.update(
            {
                "AzureActiveDirectoryEventType": 1,
                "ExtendedProperties": [
                    {"Name": "additionalDetails", "Value": f'{{"User-Agent":"{user_agent}"}}'},
                    {"Name": "extendedAuditEventCategory", "Value": "ServicePrincipal"},
                ],
                "ModifiedProperties": [
                    {"Name": name, "NewValue": new, "OldValue": old} for name, old, new in (modified or [])
                ],
                "Actor": [{"ID": actor.upn, "Type": 5}, {"ID": actor.object_id, "Type": 2}],
                "ActorContextId": self.tenant_id,
                "ActorIpAddress": ip,
                "InterSystemsId": self.guid(),
                "IntraSystemId": self.guid(),
                "SupportTicketId": "",
                "Target": [{"ID": target_id, "Type": 2}, {"ID": target_name, "Type": 1}, *(extra_targets or [])],
                "TargetContextId": self.tenant_id,
                "ObjectId": target_id,
                "UserId": actor.upn,
                "ClientIP": ip,
            }
        )
        return record

    def exchange_object_id(self, mailbox: User, rule: str | None = None) -> str:
        """ObjectId of an Exchange admin record, as real ones spell it (directory path, rule after a
        backslash): ``NAMPR05A001.prod.outlook.com/Microsoft Exchange Hosted Organizations/<org>/<alias>``."""
        alias = mailbox.upn.split("@", 1)[0]
        path = f"NAMPR05A001.prod.outlook.com/Microsoft Exchange Hosted Organizations/{self.organization}/{alias}"
        return f"{path}\\{rule}" if rule is not None else path

    def exchange_admin(
        self,
        when: datetime | str,
        cmdlet: str,
        actor: User,
        ip: str,
        *,
        object_id: str,
        parameters: list[tuple[str, str]],
        app_id: str = APP_EXO_POWERSHELL_V3,
        client_app_id: str = "",
    ) -> dict[str, Any]:
        """An Exchange admin cmdlet run (New-InboxRule, Set-Mailbox, ...): RecordType 1, ClientIP with port."""
        record = self._common(when, cmdlet, 1, "Exchange", actor.upn, actor.puid, user_type=2, result="True")
        port = self.rng.randint(1024, 65000)
        record.update(
            {
                "ObjectId": object_id,
                "UserId": actor.upn,
                "ClientIP": f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}",
                "Parameters": [{"Name": name, "Value": value} for name, value in parameters],
                "ExternalAccess": False,
                "OriginatingServer": f"{self.server} (15.20.8200.000)",
                "OrganizationName": self.organization,
                "AppId": app_id,
                "ClientAppId": client_app_id,
            }
        )
        return record

    def file_accessed(
        self,
        when: datetime | str,
        user: User,
        ip: str,
        *,
        file_name: str,
        app_id: str = APP_SHAREPOINT,
        user_agent: str = BROWSER_UA,
        operation: str = "FileAccessed",
    ) -> dict[str, Any]:
        """A OneDrive file read: RecordType 6 (SharePointFileOperation)."""
        personal = user.upn.replace("@", "_").replace(".", "_")
        tenant_label = self.organization.split(".")[0]
        site = f"https://{tenant_label}-my.sharepoint.com/personal/{personal}/"
        record = self._common(when, operation, 6, "OneDrive", user.upn, user.puid)
        record.update(
            {
                "ClientIP": ip,
                "ObjectId": f"{site}Documents/{file_name}",
                "UserId": user.upn,
                "ApplicationId": app_id,
                "CorrelationId": self.guid(),
                "EventSource": "SharePoint",
                "ItemType": "File",
                "ListId": self.guid(),
                "ListItemUniqueId": self.guid(),
                "Site": self.guid(),
                "UserAgent": user_agent,
                "WebId": self.guid(),
                "SourceFileExtension": file_name.rsplit(".", 1)[-1],
                "SiteUrl": site,
                "SourceFileName": file_name,
                "SourceRelativeUrl": "Documents",
            }
        )
        return record

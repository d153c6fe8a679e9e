"""Graph's ``/users/{id}/messages``, ``/users/{id}/mailFolders`` and ``.../mailFolders/{id}/childFolders`` on
the REST simulator, served by the Get-MgUserMessage, Get-MgUserMailFolder and Get-MgUserMailFolderChildFolder
handlers.

``$filter`` (``internetMessageId eq '...'``) and ``$select`` reach the handler as -Filter and -Property,
as for the other Graph collections (``rest_graph_routes``), which falls back to this route.
"""

from __future__ import annotations

from typing import Any


def messages_route(segments: list[str]) -> tuple[str, dict[str, Any], str, bool] | None:
    """Graph path → (cmdlet, parameters, @odata.context suffix, single entity?) for a mailbox's messages."""
    match segments:
        case ["users", user_id, "messages"]:
            return "Get-MgUserMessage", {"UserId": user_id, "All": True}, f"users('{user_id}')/messages", False
        case ["users", user_id, "mailFolders"]:
            return "Get-MgUserMailFolder", {"UserId": user_id, "All": True}, f"users('{user_id}')/mailFolders", False
        case ["users", user_id, "mailFolders", folder_id, "childFolders"]:
            context = f"users('{user_id}')/mailFolders('{folder_id}')/childFolders"
            return "Get-MgUserMailFolderChildFolder", {"UserId": user_id, "MailFolderId": folder_id, "All": True}, \
                context, False
    return None

"""Graph's ``/users/{id}/messages`` and ``/users/{id}/mailFolders`` on the REST simulator, served by the
Get-MgUserMessage and Get-MgUserMailFolder handlers.

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
    return None

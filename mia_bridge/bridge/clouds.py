"""Microsoft 365 clouds: which admin, login and Graph hosts serve a tenant.

Sources (see ../shared/reference/exo-rest-invokecommand.md §1 and the Graph national-cloud page):
the admin hosts are strings in the ExchangeOnlineManagement module's RestApiClient.dll; the US rows
also appear in ScubaGear. GCC tenants use the worldwide hosts. The 21Vianet admin host is not
certain (the module says ``partner.outlook.cn``, the v2.0 Admin API docs ``outlook.office365.cn``),
so that cloud is marked ``certain=False`` and the backend warns when it is used; the unified audit
log returns no results there anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from mia_bridge.errors import UsageError


@dataclass(frozen=True)
class Cloud:
    """Endpoints of one cloud. URLs are origins (scheme://host[:port]) without a trailing slash."""

    name: str
    admin_url: str  # InvokeCommand base: {admin_url}/adminapi/beta/{tenant}/InvokeCommand
    login_url: str  # Entra ID authority host
    graph_url: str  # Microsoft Graph service root (without /v1.0)
    exo_scope: str
    graph_scope: str
    # Host suffixes a regional redirect may send us to; the bearer token never goes anywhere else.
    admin_redirect_suffixes: tuple[str, ...] = ()
    certain: bool = True
    note: str = ""

    def authority(self, tenant: str) -> str:
        return f"{self.login_url}/{tenant}"

    def allows_admin_redirect(self, url: str) -> bool:
        """True when ``url`` is https on the admin host or one of its regional hosts."""
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            return False
        host = parts.hostname.lower()
        admin_host = (urlsplit(self.admin_url).hostname or "").lower()
        if host == admin_host:
            return True
        return any(host == s or host.endswith("." + s) for s in self.admin_redirect_suffixes)

    def with_loopback(self, origin: str) -> Cloud:
        """The same cloud served entirely by one loopback origin (the simulated tenant)."""
        host = urlsplit(origin).hostname or "127.0.0.1"
        return replace(
            self,
            name=f"{self.name}@{origin}",
            admin_url=origin,
            login_url=origin,
            graph_url=origin,
            admin_redirect_suffixes=(host, "localhost"),
        )


_WORLDWIDE = Cloud(
    name="worldwide",
    admin_url="https://outlook.office365.com",
    login_url="https://login.microsoftonline.com",
    graph_url="https://graph.microsoft.com",
    exo_scope="https://outlook.office365.com/.default",
    graph_scope="https://graph.microsoft.com/.default",
    admin_redirect_suffixes=("outlook.office365.com", "outlook.office.com"),
)

CLOUDS: dict[str, Cloud] = {
    "worldwide": _WORLDWIDE,
    "gcc": replace(_WORLDWIDE, name="gcc"),
    "gcchigh": Cloud(
        name="gcchigh",
        admin_url="https://outlook.office365.us",
        login_url="https://login.microsoftonline.us",
        graph_url="https://graph.microsoft.us",
        exo_scope="https://outlook.office365.us/.default",
        graph_scope="https://graph.microsoft.us/.default",
        admin_redirect_suffixes=("outlook.office365.us",),
    ),
    "dod": Cloud(
        name="dod",
        admin_url="https://outlook-dod.office365.us",
        login_url="https://login.microsoftonline.us",
        graph_url="https://dod-graph.microsoft.us",
        exo_scope="https://outlook-dod.office365.us/.default",
        graph_scope="https://dod-graph.microsoft.us/.default",
        admin_redirect_suffixes=("outlook-dod.office365.us",),
    ),
    "china": Cloud(
        name="china",
        admin_url="https://partner.outlook.cn",
        login_url="https://login.chinacloudapi.cn",
        graph_url="https://microsoftgraph.chinacloudapi.cn",
        exo_scope="https://partner.outlook.cn/.default",
        graph_scope="https://microsoftgraph.chinacloudapi.cn/.default",
        admin_redirect_suffixes=("partner.outlook.cn",),
        certain=False,
        note=(
            "21Vianet: the admin host partner.outlook.cn is unverified (docs also name outlook.office365.cn) "
            "and Search-UnifiedAuditLog returns no results in this cloud"
        ),
    ),
}

ALIASES: dict[str, str] = {
    "global": "worldwide",
    "commercial": "worldwide",
    "o365default": "worldwide",
    "gcc-high": "gcchigh",
    "gcc_high": "gcchigh",
    "o365usgovgcchigh": "gcchigh",
    "o365usgovdod": "dod",
    "21vianet": "china",
    "o365china": "china",
}


def get_cloud(name: str) -> Cloud:
    """Look up a cloud by name or alias (case-insensitive); a UsageError lists the valid names."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    try:
        return CLOUDS[key]
    except KeyError:
        raise UsageError(
            f"unknown cloud {name!r}",
            hint="choose one of: " + ", ".join(CLOUDS),
        ) from None

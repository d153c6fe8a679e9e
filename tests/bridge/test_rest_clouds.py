"""Cloud selection: one option maps to the admin, login and Graph hosts; redirects stay inside the cloud."""

from __future__ import annotations

import pytest

from mia_bridge.bridge.clouds import CLOUDS, get_cloud
from mia_bridge.errors import UsageError


@pytest.mark.parametrize(
    ("name", "admin", "login", "graph"),
    [
        (
            "worldwide",
            "https://outlook.office365.com",
            "https://login.microsoftonline.com",
            "https://graph.microsoft.com",
        ),
        (
            "O365Default",
            "https://outlook.office365.com",
            "https://login.microsoftonline.com",
            "https://graph.microsoft.com",
        ),
        ("gcc", "https://outlook.office365.com", "https://login.microsoftonline.com", "https://graph.microsoft.com"),
        (
            "O365USGovGCCHigh",
            "https://outlook.office365.us",
            "https://login.microsoftonline.us",
            "https://graph.microsoft.us",
        ),
        (
            "O365USGovDoD",
            "https://outlook-dod.office365.us",
            "https://login.microsoftonline.us",
            "https://dod-graph.microsoft.us",
        ),
        (
            "O365China",
            "https://partner.outlook.cn",
            "https://login.chinacloudapi.cn",
            "https://microsoftgraph.chinacloudapi.cn",
        ),
    ],
)
def test_each_cloud_maps_to_its_hosts(name: str, admin: str, login: str, graph: str) -> None:
    cloud = get_cloud(name)
    assert (cloud.admin_url, cloud.login_url, cloud.graph_url) == (admin, login, graph)
    assert cloud.exo_scope == f"{admin}/.default"
    assert cloud.authority("contoso.onmicrosoft.com") == f"{login}/contoso.onmicrosoft.com"


def test_only_china_is_marked_uncertain() -> None:
    assert [c.name for c in CLOUDS.values() if not c.certain] == ["china"]
    assert "no results" in CLOUDS["china"].note


def test_unknown_cloud_lists_the_choices() -> None:
    with pytest.raises(UsageError) as info:
        get_cloud("germany")
    assert "worldwide" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://outlook.office365.com/adminapi/beta/x/InvokeCommand", True),
        ("https://eur03.outlook.office365.com:446/adminapi/beta/x/InvokeCommand", True),  # regional host, odd port
        ("https://outlook.office.com/adminapi/beta/x/InvokeCommand", True),
        ("http://outlook.office365.com/adminapi/beta/x/InvokeCommand", False),  # never downgrade to http
        ("https://outlook.office365.com.evil.example/adminapi", False),
        ("https://evil.example/?outlook.office365.com", False),
        ("https://outlook.office365.us/adminapi", False),  # another cloud
    ],
)
def test_redirects_stay_on_the_clouds_admin_hosts(url: str, allowed: bool) -> None:
    assert get_cloud("worldwide").allows_admin_redirect(url) is allowed


def test_loopback_cloud_keeps_scopes_and_serves_every_host_locally() -> None:
    cloud = get_cloud("gcchigh").with_loopback("https://127.0.0.1:4443")
    assert {cloud.admin_url, cloud.login_url, cloud.graph_url} == {"https://127.0.0.1:4443"}
    assert cloud.exo_scope == "https://outlook.office365.us/.default"
    assert cloud.allows_admin_redirect("https://127.0.0.1:5555/adminapi")
    assert not cloud.allows_admin_redirect("https://outlook.office365.us/adminapi")

"""Connection settings: TOML file, command-line overrides, the shared typer options, secrets sources."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from mia_bridge.bridge import secrets
from mia_bridge.bridge.backend import CmdletCall, Secret
from mia_bridge.bridge.config import CONFIG_TEMPLATE, ConnectionSettings, load_settings, write_template
from mia_bridge.bridge.factory import Credentials, open_backend
from mia_bridge.bridge.winrm import WinRMBackend
from mia_bridge.cli.connection import connection_options, open_connection
from mia_bridge.errors import ConfigError, UsageError
from mia_bridge.sim.backend import SimOptions, sim_session
from mia_bridge.sim.tenant import Tenant, TenantConfig


def test_template_is_valid_toml_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "mia.toml"
    write_template(path)
    assert tomllib.loads(path.read_text())["jump_host"]["username"] == "CORP\\svc-mia"
    settings = load_settings(path)
    assert settings.server == "jump01.corp.example"
    assert settings.configuration_name == "MiaBridge" and settings.endpoint_kind == "auto"
    assert settings.organization == "contoso.onmicrosoft.com"
    assert settings.output_dir == "cases"
    assert settings.config_path == str(path)
    with pytest.raises(ConfigError, match="already exists"):
        write_template(path)
    write_template(path, force=True)
    assert path.read_text() == CONFIG_TEMPLATE


def test_overrides_beat_the_file_and_none_does_not(tmp_path: Path) -> None:
    path = tmp_path / "mia.toml"
    path.write_text('[jump_host]\nserver = "jump01"\nport = 5986\nauth = "kerberos"\n')
    settings = load_settings(path, {"server": "jump02", "port": None, "auth": None})
    assert (settings.server, settings.port, settings.auth) == ("jump02", 5986, "kerberos")


def test_spn_host_from_the_file_reaches_the_winrm_settings(tmp_path: Path) -> None:
    """By IP address, Kerberos needs the jump host's name for HOST/<name>: the file's spn_host is used."""
    from mia_bridge.bridge.factory import Credentials, winrm_settings

    path = tmp_path / "mia.toml"
    path.write_text('[jump_host]\nserver = "10.0.0.5"\nauth = "kerberos"\nspn_host = "jump01.corp.example"\n')
    settings = load_settings(path, {})
    assert winrm_settings(settings, Credentials()).spn_host == "jump01.corp.example"
    assert load_settings(path, {"spn_host": "jump02.corp.example"}).spn_host == "jump02.corp.example"


def test_config_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "env.toml"
    path.write_text('[tenant]\norganization = "fabrikam.onmicrosoft.com"\n')
    monkeypatch.setenv("MIA_CONFIG", str(path))
    assert load_settings().organization == "fabrikam.onmicrosoft.com"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[jump_host]\npassword = "hunter2"\n', "secrets do not belong"),
        ('[jump_host]\nserver = "a"\nbogus = 1\n', "unknown setting \\[jump_host\\] bogus"),
        ('[jump_host]\nport = "5986"\n', "port must be a int"),
        ("[jump_host\nserver = 1", "not valid TOML"),
        ('server = "x"\n', "must be a table"),
    ],
)
def test_bad_config_files_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(path)
    assert str(path) in info.value.message
    assert "hunter2" not in info.value.render()


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "changes",
    [{"transport": "ftp"}, {"auth": "magic"}, {"backend": "soap"}, {"port": 70000},
     {"certificate_thumbprint": "A", "certificate_path": "b.pfx"}, {"server": None}],
)
def test_invalid_settings(changes: dict[str, Any]) -> None:
    base = {"server": "jump01"} | changes
    with pytest.raises(ConfigError):
        ConnectionSettings(**base).validate()


def test_basic_over_plain_http_to_a_remote_host_is_refused() -> None:
    settings = ConnectionSettings(server="jump01.corp.example", transport="http", auth="basic", username="u")
    with pytest.raises(UsageError, match="clear text"):
        open_backend(settings, Credentials(Secret("pw")))


def test_open_backend_builds_the_psrp_backend_without_connecting() -> None:
    settings = ConnectionSettings(server="jump01.corp.example", username="CORP\\svc", organization="c.onmicrosoft.com",
                                  app_id="app", certificate_thumbprint="AB")
    backend = open_backend(settings, Credentials(Secret("pw")))
    assert isinstance(backend, WinRMBackend)
    described = backend.describe()
    assert described["endpoint"] == "https://jump01.corp.example:5986/wsman"
    assert "pw" not in str(described.values())


# --- secrets ----------------------------------------------------------------------------------


def test_password_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(secrets.WINRM_PASSWORD_ENV, "from-env")
    found = secrets.winrm_password("svc", interactive=False)
    assert found is not None and found.reveal() == "from-env"
    assert "from-env" not in repr(found)


def test_password_from_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):
        priority = 1  # type: ignore[assignment]

        def __init__(self) -> None:
            self.store: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.store.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.store[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.store.pop((service, username), None)

    monkeypatch.delenv(secrets.WINRM_PASSWORD_ENV, raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        secrets.store_winrm_password("CORP\\svc", Secret("from-keyring"))
        found = secrets.winrm_password("CORP\\svc", interactive=False)
        assert found is not None and found.reveal() == "from-keyring"
        assert secrets.winrm_password("someone-else", interactive=False) is None
    finally:
        keyring.set_keyring(previous)


def test_password_from_prompt_and_none_when_not_interactive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(secrets.CERT_PASSWORD_ENV, raising=False)
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return "typed"

    found = secrets.certificate_password("C:\\certs\\a.pfx", prompt=prompt)
    assert found is not None and found.reveal() == "typed" and len(asked) == 1
    assert secrets.certificate_password("C:\\certs\\a.pfx", interactive=False) is None


# --- the shared typer options ----------------------------------------------------------------------


def _app(captured: list[Any]) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @connection_options
    def probe(name: str = typer.Option("n", "--name"), *, conn: ConnectionSettings,
              simulator: SimOptions | None) -> None:
        captured.append((name, conn, simulator))

    return app


def test_connection_options_reach_the_command(tmp_path: Path) -> None:
    path = tmp_path / "mia.toml"
    path.write_text('[jump_host]\nserver = "from-file"\nconfiguration_name = "ExoBridge"\n')
    captured: list[Any] = []
    result = CliRunner().invoke(_app(captured), [
        "--name", "x", "--config", str(path), "--port", "5999", "--auth", "ntlm", "--username", "CORP\\u",
        "--organization", "contoso.onmicrosoft.com", "--app-id", "app", "--certificate-thumbprint", "AB",
        "--ca-bundle", str(path),
    ])
    assert result.exit_code == 0, result.output
    [(name, conn, simulator)] = captured
    assert name == "x"
    assert (conn.server, conn.port, conn.auth, conn.configuration_name) == ("from-file", 5999, "ntlm", "ExoBridge")
    assert conn.ca_bundle == str(path) and conn.transport == "https" and simulator is None


def test_connection_options_sim_flags() -> None:
    captured: list[Any] = []
    result = CliRunner().invoke(_app(captured), ["--sim", "--sim-records", "10", "--sim-seed", "3",
                                                 "--sim-no-premium", "--sim-ingestion-off",
                                                 "--sim-mailbox-audit-retired"])
    assert result.exit_code == 0, result.output
    conn, simulator = captured[0][1:]
    assert conn == ConnectionSettings()  # the production settings know nothing of the simulator
    assert simulator == SimOptions(records=10, seed=3, premium=False, ingestion=False, mailbox_audit_retired=True)


def test_connection_options_without_server_is_a_clear_error() -> None:
    result = CliRunner().invoke(_app([]), [])
    assert isinstance(result.exception, ConfigError)
    assert "--server" in (result.exception.hint or "")


def test_help_lists_every_connection_option() -> None:
    result = CliRunner().invoke(_app([]), ["--help"], env={"COLUMNS": "200"})
    for flag in ("--server", "--port", "--transport", "--auth", "--username", "--ca-bundle", "--configuration-name",
                 "--organization", "--app-id", "--certificate-thumbprint", "--certificate-path",
                 "--exchange-environment", "--config", "--backend", "--sim", "--sim-records", "--sim-seed",
                 "--sim-no-premium", "--sim-ingestion-off", "--sim-mailbox-audit-retired"):
        assert flag in result.output
    assert "--password" not in result.output


def test_open_connection_sim_runs_over_https_negotiate_by_default() -> None:
    with open_connection(ConnectionSettings(), SimOptions(records=200, seed=1)) as exo:
        described = exo.describe()
        info = exo.invoke(CmdletCall("Get-ConnectionInformation")).output[0]
    assert described["transport"] == "https" and described["auth"] == "negotiate"
    assert described["cert_validation"] and described["ca_bundle"]
    assert info["State"] == "Connected"


def test_sim_session_with_certificate_file_and_basic_http() -> None:
    conn = ConnectionSettings(transport="http", auth="basic", certificate_path="C:\\certs\\x.pfx")
    with sim_session(conn, tenant=None) as session:
        assert session.backend.invoke(CmdletCall("Get-ConnectionInformation")).output[0]["State"] == "Connected"
        _, params = [c for c in session.server.calls if c[0] == "Connect-ExchangeOnline"][-1]
        assert params["CertificateFilePath"] == "C:\\certs\\x.pfx"
        assert isinstance(params["CertificatePassword"], Secret)


def test_sim_refuses_kerberos() -> None:
    with pytest.raises(ConfigError, match="kerberos"), sim_session(
        ConnectionSettings(auth="kerberos"), tenant=Tenant(TenantConfig())
    ):
        pass


def test_sim_session_with_winrm_certificate_auth() -> None:
    conn = ConnectionSettings(auth="certificate")
    with sim_session(conn, tenant=Tenant(TenantConfig())) as session:
        described = session.backend.describe()
        assert described["auth"] == "certificate"
        assert session.backend.invoke(CmdletCall("Get-ConnectionInformation")).output[0]["State"] == "Connected"


def test_mia_config_init_writes_the_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mia_bridge.cli.app import main

    path = tmp_path / "cfg" / "mia.toml"
    assert main(["config", "init", str(path)]) == 0
    assert path.read_text() == CONFIG_TEMPLATE
    assert main(["config", "init", str(path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["config", "init", str(path), "--force"]) == 0


def test_missing_password_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(secrets.WINRM_PASSWORD_ENV, raising=False)
    monkeypatch.setattr(secrets, "_from_keyring", lambda entry: None)
    settings = ConnectionSettings(server="jump01", auth="ntlm", username="CORP\\svc")
    with pytest.raises(ConfigError, match="no WinRM password") as info:
        open_backend(settings, interactive=False)
    assert "MIA_WINRM_PASSWORD" in (info.value.hint or "")

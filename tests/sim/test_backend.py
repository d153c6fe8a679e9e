"""The simulator is a backend registered with ``bridge.factory`` (issue 11): its settings live in
``SimOptions``; the production settings and everything in ``bridge/`` know nothing of it."""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mia_bridge.bridge.backend import CmdletCall
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.bridge.factory import Credentials, open_backend, registered_backends
from mia_bridge.bridge.winrm import WinRMBackend
from mia_bridge.cli.app import build_app
from mia_bridge.cli.connection import open_connection
from mia_bridge.errors import ConfigError, ExitCode
from mia_bridge.sim import backend as sim_backend
from mia_bridge.sim.backend import SimBackend, SimOptions, sim_session
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import TenantConfig

BRIDGE = Path(sim_backend.__file__).resolve().parents[1] / "bridge"
PLAIN = ConnectionSettings(transport="http", auth="basic")  # the quickest simulated session


def test_connection_settings_have_no_simulator_field() -> None:
    names = [f.name for f in dataclasses.fields(ConnectionSettings)]
    assert "server" in names and "backend" in names  # the real fields are seen
    assert [n for n in names if "sim" in n.lower()] == []


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top, in functions or under TYPE_CHECKING, and every
    dotted mia_bridge name in a string (``importlib.import_module`` targets)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("mia_bridge."):
            found.add(node.value)
    return found


def test_bridge_never_imports_the_simulator() -> None:
    sources = sorted(BRIDGE.glob("*.py"))
    assert len(sources) > 10
    offenders = {
        path.name: sorted(m for m in _imported_modules(path) if m.split(".")[:2] == ["mia_bridge", "sim"])
        for path in sources
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}
    # the checker sees what it should: the factory's own plug-in import of the REST backend
    assert "mia_bridge.bridge.rest_backend" in _imported_modules(BRIDGE / "factory.py")


def test_importing_every_bridge_module_loads_nothing_of_the_simulator() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import mia_bridge.bridge as bridge\n"
        "names = [m.name for m in pkgutil.iter_modules(bridge.__path__, 'mia_bridge.bridge.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "from mia_bridge.bridge.config import ConnectionSettings\n"
        "from mia_bridge.bridge.factory import Credentials, open_backend\n"
        "open_backend(ConnectionSettings(server='jump01', auth='basic', username='u'), Credentials())\n"
        "print(len(names), sorted(m for m in sys.modules if m.startswith('mia_bridge.sim')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    count, loaded = done.stdout.strip().split(" ", 1)
    assert int(count) > 10 and loaded == "[]"


def test_the_sim_backend_is_registered_by_name_and_opens_on_loopback() -> None:
    sim_backend.register(SimOptions(records=60, seed=2))
    assert "sim" in registered_backends()
    handle = open_backend(PLAIN, Credentials(), backend="sim")  # no jump host: the simulator serves the settings
    assert isinstance(handle, SimBackend) and handle.session is None  # returned unopened
    with handle as exo:
        assert isinstance(exo, WinRMBackend)  # the real pypsrp backend (the collect engine clones it)
        assert exo.invoke(CmdletCall("Get-ConnectionInformation")).output[0]["State"] == "Connected"
        assert handle.invoke(CmdletCall("Get-ConnectionInformation")).output[0]["State"] == "Connected"
        assert handle.describe()["server"] == "127.0.0.1"
        server = handle.session.server if handle.session else None
        assert server is not None and server.port
    assert handle.session is None
    with pytest.raises(ConfigError, match="not open"):
        handle.invoke(CmdletCall("Get-ConnectionInformation"))


def test_a_failed_start_leaves_nothing_open() -> None:
    handle = SimBackend(ConnectionSettings(auth="kerberos"), SimOptions(records=10))
    with pytest.raises(ConfigError, match="does not offer kerberos"), handle:
        pass
    assert handle.session is None
    with pytest.raises(ConfigError, match="does not offer kerberos"), open_connection(
        ConnectionSettings(auth="kerberos"), SimOptions(records=10)
    ):
        pass


def test_without_the_simulator_the_psrp_backend_still_needs_a_jump_host() -> None:
    with pytest.raises(ConfigError, match="no jump host"):
        open_backend(PLAIN, Credentials())


def test_sim_options_reach_the_tenant() -> None:
    options = SimOptions(records=80, seed=3, premium=False, ingestion=False, mailbox_audit_retired=True,
                         quirks=("none",))
    tenant = sim_backend.build_tenant(options, organization="fabrikam.onmicrosoft.com")
    config = tenant.config
    assert (config.premium, config.ingestion_enabled, config.mailbox_audit_retired, config.seed) == (
        False, False, True, 3)
    assert config.quirks == frozenset() and config.organization == "fabrikam.onmicrosoft.com"
    with pytest.raises(ConfigError, match="--sim-records cannot be negative"):
        sim_backend.build_tenant(SimOptions(records=-1))


def test_records_period_covers_every_record_in_whole_days() -> None:
    tenant = build_tenant(TenantConfig(), records=300)
    times = [datetime.fromisoformat(r["CreationTime"]).replace(tzinfo=UTC) for r in tenant.audit_records()]
    with sim_session(PLAIN, tenant=tenant) as session:
        period = session.records_period()
    assert period is not None
    start, end = period
    assert start <= min(times) and max(times) < end
    assert start.time() == end.time() == datetime.min.time() and (end - start).days >= 1


def test_cli_sim_flags_become_sim_options_and_reach_doctor() -> None:
    app = build_app(["doctor"])
    result = CliRunner().invoke(app, ["doctor", "--sim", "--sim-records", "-1"])
    assert isinstance(result.exception, ConfigError) and "--sim-records cannot be negative" in str(result.exception)
    result = CliRunner().invoke(app, ["doctor", "--sim", "--sim-records", "50", "--sim-ingestion-off",
                                      "--transport", "http", "--auth", "basic", "--json"])
    assert result.exit_code == ExitCode.ATTENTION, result.output
    document = json.loads(result.output)
    assert document["backend"]["server"] == "127.0.0.1" and document["backend"]["auth"] == "basic"
    checks = {c["name"]: c["status"] for c in document["checks"]}
    assert checks["Unified audit log ingestion"] == "fail"  # --sim-ingestion-off reached the simulated tenant
    assert checks["WinRM endpoint and auth"] == "ok"

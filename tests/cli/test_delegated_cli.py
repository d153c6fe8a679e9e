"""PROOF: ``mia collect --backend rest --auth device-code`` end to end: the prompt, the same records as the app-only
run, a second run signed in from the token cache without a prompt, and ``mia logout`` forcing a new sign-in.

The cache is the explicit plaintext opt-in in a temporary folder (no OS keyring in the test environment);
the tenant is ``mia sim serve --api rest`` in a subprocess, so every run talks to the same token service."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mia_bridge.cli.app import main
from mia_bridge.evidence.store import read_records
from mia_bridge.sim.rest_delegated import DEFAULT_PUBLIC_CLIENT_ID
from mia_bridge.sim.tenant import DEFAULT_APP_ID, DEFAULT_ORGANIZATION

PERIOD = ["--start", "2026-10-01", "--end", "2026-10-31"]


def _ids(case: Path) -> set[str]:
    return {r["Id"] for r in read_records(case / "evidence" / "ual.jsonl")}


def test_sim_device_code_collects_what_the_app_only_run_collects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = ["--sim", "--backend", "rest", "--sim-records", "2500", "--sim-seed", "5", *PERIOD, "--json"]
    assert main(["collect", *sim, "--auth", "device-code", "--out", str(tmp_path / "delegated")]) == 0
    captured = capsys.readouterr()
    assert re.search(r"open the page https://127\.0\.0\.1:\d+/\S+ and enter the code [A-Z0-9]{9}", captured.err)
    assert json.loads(captured.out)["complete"]
    assert "eyJ" not in captured.out + captured.err  # no token (a JWT starts so) in any output
    assert main(["collect", *sim, "--out", str(tmp_path / "app-only")]) == 0
    assert "enter the code" not in capsys.readouterr().err
    assert _ids(tmp_path / "delegated") == _ids(tmp_path / "app-only")
    assert not any("eyJ" in p.read_text(errors="replace") for p in (tmp_path / "delegated").rglob("*") if p.is_file())
    manifest = json.loads((tmp_path / "delegated" / "manifest.json").read_text())
    assert manifest["backend"]["account"].startswith("investigator@")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """``mia sim serve --api rest``: (url, CA file, app certificate PEM)."""
    ca = tmp_path / "ca.pem"
    env = {k: v for k, v in os.environ.items() if k not in ("MIA_SIM_PASSWORD", "MIA_CERT_PASSWORD")}
    server = subprocess.Popen(
        [sys.executable, "-m", "mia_bridge.cli.app", "sim", "serve", "--api", "rest", "--records", "1500",
         "--ca-out", str(ca)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert server.stdout is not None and server.stderr is not None
        ready = server.stdout.readline()
        match = re.fullmatch(r"READY (https://127\.0\.0\.1:\d+)\n", ready)
        assert match, ready
        info = "".join(server.stderr.readline() for _ in range(5))
        pem = re.search(r"app certificate: (\S+\.pem)", info)
        assert pem and DEFAULT_PUBLIC_CLIENT_ID in info, info
        yield match.group(1), ca, pem.group(1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)


def test_cached_sign_in_then_logout(
    served: tuple[str, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, ca, pem = served
    cache = tmp_path / "tokens.bin"
    common = ["--backend", "rest", "--server", url, "--ca-bundle", str(ca), "--organization", DEFAULT_ORGANIZATION,
              *PERIOD, "--quiet"]
    delegated = [*common, "--auth", "device-code", "--client-id", DEFAULT_PUBLIC_CLIENT_ID,
                 "--token-cache-insecure-file", str(cache)]

    assert main(["collect", *delegated, "--out", str(tmp_path / "first")]) == 0
    first = capsys.readouterr().err
    assert "enter the code" in first and "UNENCRYPTED" in first

    assert main(["collect", *delegated, "--out", str(tmp_path / "second")]) == 0
    assert "enter the code" not in capsys.readouterr().err  # signed in from the cache

    assert main(["collect", *common, "--app-id", DEFAULT_APP_ID, "--certificate-path", pem,
                 "--out", str(tmp_path / "app-only")]) == 0
    assert _ids(tmp_path / "first") == _ids(tmp_path / "second") == _ids(tmp_path / "app-only")
    assert len(_ids(tmp_path / "first")) > 0

    assert main(["logout", "--token-cache-insecure-file", str(cache)]) == 0
    assert f"signed out investigator@{DEFAULT_ORGANIZATION}" in capsys.readouterr().err
    assert not cache.exists()
    assert main(["collect", *delegated, "--out", str(tmp_path / "third")]) == 0
    assert "enter the code" in capsys.readouterr().err  # logout forced a new sign-in

    assert main(["doctor", *[a for a in delegated if a not in PERIOD and a != "--quiet"]]) == 0
    doctor = capsys.readouterr().out
    flat = re.sub(r"[\s│]+", " ", doctor)
    assert "signed in as investigator@" in flat and "Graph audit log query API ok" in flat


def test_doctor_names_the_account_and_what_its_roles_allow(capsys: pytest.CaptureFixture[str]) -> None:
    sim = ["doctor", "--sim", "--backend", "rest", "--auth", "device-code", "--sim-records", "200"]
    assert main(sim) == 0
    flat = re.sub(r"[\s│]+", " ", capsys.readouterr().out)
    assert "signed in as investigator@" in flat and "Audit log search role ok" in flat
    assert main([*sim, "--sim-user-roles", "Global Reader"]) == 3
    flat = re.sub(r"[\s│]+", " ", capsys.readouterr().out)
    assert "Audit log search role fail access denied" in flat
    assert "Graph audit log query API warn" in flat and "Exchange Online connection ok" in flat

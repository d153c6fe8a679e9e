"""``mia sim serve --api rest`` end to end: READY line, then ``mia doctor --backend rest --server <url>``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mia_bridge.cli.app import main
from mia_bridge.sim.tenant import DEFAULT_APP_ID, DEFAULT_ORGANIZATION

MIA = [sys.executable, "-m", "mia_bridge.cli.app"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MIA_SIM_PASSWORD", None)  # the REST simulator needs none
    env.pop("MIA_CERT_PASSWORD", None)
    env["COLUMNS"] = "200"
    return env


def test_serve_rest_then_doctor_over_rest(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    server = subprocess.Popen(
        [*MIA, "sim", "serve", "--api", "rest", "--records", "300", "--ca-out", str(ca)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert server.stdout is not None and server.stderr is not None
        ready = server.stdout.readline()
        match = re.fullmatch(r"READY (https://127\.0\.0\.1:\d+)\n", ready)
        assert match, ready + server.stderr.read()
        url = match.group(1)
        info = "".join(server.stderr.readline() for _ in range(4))
        pem = re.search(r"app certificate: (\S+\.pem)", info)
        assert pem and ca.exists(), info
        doctor = subprocess.run(
            [
                *MIA,
                "doctor",
                "--backend",
                "rest",
                "--server",
                url,
                "--ca-bundle",
                str(ca),
                "--organization",
                DEFAULT_ORGANIZATION,
                "--app-id",
                DEFAULT_APP_ID,
                "--certificate-path",
                pem.group(1),
            ],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=120,
        )
        assert doctor.returncode in (0, 3), doctor.stdout + doctor.stderr
        assert "InvokeCommand" in doctor.stdout
        assert "M365_ADVANCED_AUDITING" in doctor.stdout or "Premium" in doctor.stdout
        assert "PRIVATE KEY" not in doctor.stdout + doctor.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0
    assert "simulator stopped" in err


def test_rest_backend_refuses_a_non_loopback_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--server names a jump host for psrp; with rest it may only be the simulator's loopback URL."""
    pem = tmp_path / "app.pem"
    pem.write_text("placeholder")
    code = main(
        [
            "doctor",
            "--backend",
            "rest",
            "--server",
            "jump01.corp.example",
            "--organization",
            DEFAULT_ORGANIZATION,
            "--app-id",
            DEFAULT_APP_ID,
            "--certificate-path",
            str(pem),
        ]
    )
    err = capsys.readouterr().err
    assert code != 0
    assert "jump01.corp.example" in err and "mia sim serve --api rest" in err
    assert "Traceback" not in err

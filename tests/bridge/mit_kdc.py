"""A real MIT Kerberos KDC on 127.0.0.1 for the Kerberos tests (krb5-kdc and krb5-admin-server).

``MitKdc`` creates a realm in a temporary folder, adds principals, writes keytabs and runs
``krb5kdc`` in the foreground on a free loopback port. While it runs, this process's Kerberos
(KRB5_CONFIG, KRB5_KTNAME, KRB5CCNAME) points at it; the previous values come back on ``stop``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from mia_bridge.sim.kerberos import ISOLATED_ENV, loopback_only_config

TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit")


def missing_tools() -> list[str]:
    """What this machine lacks to run the KDC and the Kerberos client."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists()]
    try:
        import gssapi  # noqa: F401
    except ImportError:
        missing.append("python-gssapi (pyspnego[kerberos])")
    return missing


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MitKdc:
    """A throwaway realm served by krb5kdc on 127.0.0.1."""

    def __init__(self, realm: str = "MIA.TEST") -> None:
        self.realm = realm
        self.dir = Path(tempfile.mkdtemp(prefix="mia-kdc-"))
        self.port = _free_port()
        self.keytab = self.dir / "services.keytab"
        self.ccache = self.dir / "ccache"
        self.log = self.dir / "kdc.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._saved: dict[str, str | None] = {}

    # --- set-up -------------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {
            "KRB5_CONFIG": str(self.dir / "krb5.conf"),
            "KRB5_KDC_PROFILE": str(self.dir / "kdc.conf"),
            "KRB5_KTNAME": f"FILE:{self.keytab}",
            "KRB5CCNAME": f"FILE:{self.ccache}",
            ISOLATED_ENV: str(self.dir / "krb5.conf"),
        }

    def _admin(self, query: str) -> None:
        self._run(_tool("kadmin.local"), "-r", self.realm, "-q", query)

    def _run(self, *args: str) -> None:
        done = subprocess.run(args, env={**os.environ, **self.env}, capture_output=True, text=True, check=False)
        # kadmin.local reports failures on stderr with exit 0; treat any "error"/"cannot" as fatal.
        if done.returncode != 0 or any(w in done.stderr.lower() for w in ("error", "cannot", "unable")):
            raise RuntimeError(f"{' '.join(args[:2])}: {done.stderr.strip() or done.stdout.strip()}")

    def _write_config(self) -> None:
        listen = f"127.0.0.1:{self.port}"
        (self.dir / "krb5.conf").write_text(loopback_only_config(self.realm, self.port))
        (self.dir / "kdc.conf").write_text(
            f"[kdcdefaults]\n kdc_listen = {listen}\n kdc_tcp_listen = {listen}\n"
            f"[realms]\n {self.realm} = {{\n"
            f"  database_name = {self.dir}/principal\n  key_stash_file = {self.dir}/stash\n"
            f"  acl_file = {self.dir}/kadm5.acl\n  kdc_listen = {listen}\n  kdc_tcp_listen = {listen}\n }}\n"
            f"[logging]\n kdc = FILE:{self.log}\n"
        )

    def _serve(self) -> bool:
        """Start krb5kdc on ``self.port``; False when it could not listen there."""
        self._proc = subprocess.Popen(
            [_tool("krb5kdc"), "-n"], env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while self._proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
            time.sleep(0.05)
        self._halt()
        return False

    def start(self) -> MitKdc:
        try:
            self._write_config()
            self._run(_tool("kdb5_util"), "create", "-s", "-r", self.realm, "-P", "mia-kdc-master-key")
            for _ in range(3):  # the free port may be taken between our probe and krb5kdc's bind
                if self._serve():
                    break
                self.port = _free_port()
                self._write_config()
            else:
                raise RuntimeError(f"krb5kdc did not start (log: {self.log})")
        except BaseException:
            self.stop()
            raise
        for key, value in self.env.items():
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value
        return self

    def add_user(self, name: str, password: str) -> str:
        self._admin(f"addprinc -pw {password} {name}")
        return f"{name}@{self.realm}"

    def add_service(self, principal: str) -> None:
        """A service principal (e.g. ``host/jump01.mia.test``) whose key goes into the acceptor keytab."""
        self._admin(f"addprinc -randkey {principal}")
        self._admin(f"ktadd -k {self.keytab} {principal}")

    def kinit(self, name: str) -> None:
        """A ticket for ``name`` in this realm's ticket cache (from a keytab of the user's current key)."""
        keytab = self.dir / f"{name}.keytab"
        self._admin(f"ktadd -norandkey -k {keytab} {name}")
        self._run(_tool("kinit"), "-k", "-t", str(keytab), f"{name}@{self.realm}")

    def kdestroy(self) -> None:
        self.ccache.unlink(missing_ok=True)

    def requests(self) -> str:
        """The KDC's log: one line per AS_REQ/TGS_REQ it answered."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # --- tear-down ----------------------------------------------------------------------------

    def stop(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._halt()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _halt(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def __enter__(self) -> MitKdc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

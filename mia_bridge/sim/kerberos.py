"""Keep the simulator's Negotiate logons off every real Kerberos realm.

With python-gssapi installed, a Negotiate client first tries Kerberos: it asks the default realm's
KDC (from /etc/krb5.conf, found through DNS) for a ticket and only then falls back to NTLM. A client
talking to the simulator must never do that, so a process that runs the simulator points MIT
Kerberos at a configuration with one realm and no KDC: Kerberos fails at once, without a packet,
and Negotiate uses NTLM. A caller that sets up its own loopback realm (the tests' MIT KDC) marks it
with ``MIA_KRB5_ISOLATED`` and is left alone.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from pathlib import Path

ISOLATED_ENV = "MIA_KRB5_ISOLATED"  # = the KRB5_CONFIG path that is known to be loopback-only
SIM_REALM = "MIA-SIM.INVALID"

_lock = threading.Lock()


def loopback_only_config(realm: str, kdc_port: int | None = None) -> str:
    """krb5.conf text for ``realm`` with no DNS lookups; its KDC, if any, is on 127.0.0.1."""
    kdc = f"  kdc = 127.0.0.1:{kdc_port}\n" if kdc_port else ""
    return (
        "[libdefaults]\n"
        f" default_realm = {realm}\n"
        " dns_lookup_kdc = false\n"
        " dns_lookup_realm = false\n"
        " dns_canonicalize_hostname = false\n"
        " rdns = false\n"
        " udp_preference_limit = 1\n"  # TCP only: one stream per request, easy to follow in the KDC log
        "[realms]\n"
        f" {realm} = {{\n{kdc} }}\n"
        "[domain_realm]\n"
        f" localhost = {realm}\n"
        f" 127.0.0.1 = {realm}\n"
    )


def is_isolated() -> bool:
    config = os.environ.get("KRB5_CONFIG")
    return bool(config) and os.environ.get(ISOLATED_ENV) == config


def isolate_kerberos() -> None:
    """Point this process's Kerberos at a realm without a KDC, unless a loopback realm is already set."""
    with _lock:
        if is_isolated():
            return
        folder = tempfile.mkdtemp(prefix="mia-sim-krb5-")
        atexit.register(shutil.rmtree, folder, True)
        config = Path(folder) / "krb5.conf"
        config.write_text(loopback_only_config(SIM_REALM))
        os.environ["KRB5_CONFIG"] = str(config)
        os.environ["KRB5CCNAME"] = "MEMORY:mia-sim"  # never read or write the user's ticket cache
        os.environ[ISOLATED_ENV] = str(config)

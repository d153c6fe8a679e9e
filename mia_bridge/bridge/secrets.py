"""Where the WinRM password and the certificate password come from: never the command line.

Order: the environment variable (``MIA_WINRM_PASSWORD`` / ``MIA_CERT_PASSWORD``), then the OS
keyring (service ``mia-bridge``, entry = user name or ``certificate:<path>``), then an
interactive prompt when a terminal is attached. Values are wrapped in ``Secret`` at once.
"""

from __future__ import annotations

import getpass
import logging
import os
import sys
from collections.abc import Callable

from mia_bridge.bridge.backend import Secret

log = logging.getLogger(__name__)

KEYRING_SERVICE = "mia-bridge"
WINRM_PASSWORD_ENV = "MIA_WINRM_PASSWORD"
CERT_PASSWORD_ENV = "MIA_CERT_PASSWORD"

Prompt = Callable[[str], str]


def _from_keyring(entry: str) -> str | None:
    try:
        import keyring
        from keyring.errors import KeyringError

        try:
            return keyring.get_password(KEYRING_SERVICE, entry)
        except KeyringError:
            return None
    except Exception:  # a broken keyring backend must not stop a collection; say so and go on
        log.debug("keyring lookup failed", exc_info=False)
        return None


def _lookup(env_var: str, keyring_entry: str | None, prompt_text: str, prompt: Prompt | None, interactive: bool) -> (
    Secret | None
):
    value = os.environ.get(env_var)
    if value:
        return Secret(value)
    if keyring_entry:
        stored = _from_keyring(keyring_entry)
        if stored:
            return Secret(stored)
    if interactive and (prompt is not None or sys.stdin.isatty()):
        entered = (prompt or getpass.getpass)(prompt_text)
        if entered:
            return Secret(entered)
    return None


def winrm_password(username: str | None, *, prompt: Prompt | None = None, interactive: bool = True) -> Secret | None:
    """The WinRM password for ``username``: env var, keyring entry ``username``, then a prompt."""
    return _lookup(
        WINRM_PASSWORD_ENV, username, f"WinRM password for {username or 'the jump host'}: ", prompt, interactive
    )


def certificate_password(
    certificate_path: str | None, *, prompt: Prompt | None = None, interactive: bool = True
) -> Secret | None:
    """The password of the app certificate file on the jump host (``-CertificatePassword``)."""
    entry = f"certificate:{certificate_path}" if certificate_path else None
    return _lookup(CERT_PASSWORD_ENV, entry, "Certificate file password: ", prompt, interactive)


def store_winrm_password(username: str, password: Secret) -> None:
    """Save a WinRM password in the OS keyring (used by ``mia config``)."""
    import keyring

    keyring.set_password(KEYRING_SERVICE, username, password.reveal())

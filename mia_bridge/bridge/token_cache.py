"""Where delegated sign-ins are remembered: msal-extensions' encrypted persistence, or nothing.

``encrypted`` (default) uses ``msal_extensions.build_encrypted_persistence``: DPAPI on Windows, the
Keychain on macOS, libsecret (the desktop keyring over D-Bus) on Linux
(https://github.com/AzureAD/microsoft-authentication-extensions-for-python, README "Usage").
Where none of those works the cache is refused, never silently written in plaintext: the user may
opt in to a plaintext file (``--token-cache-insecure-file PATH``, created 0600, with a warning) or
to no cache at all (``--no-token-cache``: every run signs in again). The refresh token in the cache
grants access to the tenant for up to 90 days: treat the file like a password.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import msal

from mia_bridge.errors import BridgeAuthError

log = logging.getLogger(__name__)

CACHE_NAME = "msal-token-cache.bin"


def default_location() -> Path:
    """Per-user cache folder: %LOCALAPPDATA% on Windows, ~/Library/Caches on macOS, $XDG_CACHE_HOME else."""
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mia-bridge" / CACHE_NAME


@dataclass(frozen=True)
class CacheChoice:
    """Which store to use: ``encrypted`` at ``path`` (default location if None), ``insecure-file``, ``none``."""

    kind: str = "encrypted"
    path: Path | None = None

    @property
    def location(self) -> Path:
        return self.path or default_location()

    def describe(self) -> str:
        if self.kind == "none":
            return "none (this run only)"
        return f"{self.kind} ({self.location})"


def _secure_file(path: Path) -> None:
    """Create the plaintext cache 0600 (or tighten it), warning that it is plaintext."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        path.touch(mode=0o600)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
        log.warning("%s was readable by others (mode %o); now 0600", path, mode)


def open_cache(choice: CacheChoice) -> msal.TokenCache:
    """An MSAL token cache for ``choice``; BridgeAuthError when no secure store exists here."""
    if choice.kind == "none":
        return msal.TokenCache()
    from msal_extensions import FilePersistence, PersistedTokenCache, build_encrypted_persistence

    location = choice.location
    if choice.kind == "insecure-file":
        _secure_file(location)
        sys.stderr.write(
            f"WARNING: tokens are kept UNENCRYPTED in {location} (mode 0600), as --token-cache-insecure-file asked; "
            "the refresh token in it opens the tenant: delete it with `mia logout` when the case is done\n"
        )
        return PersistedTokenCache(FilePersistence(str(location)))
    location.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        persistence = build_encrypted_persistence(str(location))
    except Exception as exc:  # ImportError (no gi/libsecret), RuntimeError (no keyring daemon), OSError …
        raise BridgeAuthError(
            f"no secure token store on this machine ({type(exc).__name__}: {str(exc)[:160]}); tokens are not "
            "written in plaintext without your consent",
            hint="on Linux install and unlock a keyring (libsecret, e.g. gnome-keyring, and PyGObject), or pass "
            "--token-cache-insecure-file PATH (plaintext, 0600) or --no-token-cache (sign in on every run)",
        ) from None
    return PersistedTokenCache(persistence)


def forget(choice: CacheChoice) -> list[str]:
    """Remove every account and token from the store; returns the accounts removed (``mia logout``)."""
    if choice.kind == "none":
        return []
    location = choice.location
    if choice.kind == "insecure-file" and not location.exists():
        return []
    if choice.kind == "encrypted" and not location.exists():
        return []  # nothing was ever saved (the signal/location file is written with the first token)
    cache = open_cache(choice)
    found = cache.search(msal.TokenCache.CredentialType.ACCOUNT)
    accounts = sorted({str(a.get("username") or a.get("home_account_id")) for a in found})
    from msal_extensions import PersistedTokenCache

    if isinstance(cache, PersistedTokenCache):
        cache._persistence.save("{}")  # msal-extensions has no public "clear": an empty cache document
    if choice.kind == "insecure-file":
        location.unlink(missing_ok=True)
        Path(f"{location}.lockfile").unlink(missing_ok=True)
    return accounts

"""Sealing the manifest: its SHA-256 (to pin) and, with a case key, an HMAC-SHA256 signature.

Without a key, anyone who can write the case can alter a record *and* update the manifest's hashes:
``mia verify`` then passes. What stops that is the manifest's own SHA-256, printed at the end of every
run and by ``mia verify``, and shown in the report: whoever noted it (a ticket, a chain-of-custody form)
detects any change. With a case key (``MIA_CASE_KEY``, or ``--key FILE`` on the command line: the key is
never an argument itself), every save of the manifest writes ``manifest.hmac`` = HMAC-SHA256(key,
manifest bytes), and ``mia verify`` with the same key refuses a manifest changed by anyone without it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

from mia_bridge.errors import UsageError
from mia_bridge.evidence.layout import SIGNATURE_NAME
from mia_bridge.safe_files import write_text

KEY_ENV = "MIA_CASE_KEY"
ALGORITHM = "HMAC-SHA256"
_key: bytes | None = None  # set by the command line's --key FILE for this process


def use_key_file(path: Path | None) -> None:
    """Sign (and check) with the key held in ``path`` (its bytes, surrounding whitespace stripped)."""
    global _key
    if path is None:
        _key = None
        return
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise UsageError(f"--key {path}: cannot read the case key: {exc.strerror or exc}") from None
    if len(key) < 16:
        raise UsageError(f"--key {path}: the case key is shorter than 16 bytes",
                         hint="e.g. head -c 32 /dev/urandom | base64 > case.key")
    _key = key


def case_key() -> bytes | None:
    """The key of this process: ``--key FILE``, else ``MIA_CASE_KEY``, else none."""
    if _key is not None:
        return _key
    value = os.environ.get(KEY_ENV, "")
    return value.encode("utf-8") if value else None


def mac(key: bytes, manifest_bytes: bytes) -> str:
    return hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()


def sign(case_dir: Path, manifest_bytes: bytes) -> Path | None:
    """Write ``manifest.hmac`` for these manifest bytes when a key is set (else leave any earlier one: a stale
    signature then tells that the manifest changed without the key)."""
    key = case_key()
    if key is None:
        return None
    record = {"algorithm": ALGORITHM, "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
              "mac": mac(key, manifest_bytes)}
    path = Path(case_dir) / SIGNATURE_NAME
    tmp = path.with_name(f".{SIGNATURE_NAME}.{os.getpid()}.tmp")
    write_text(tmp, json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def check(case_dir: Path, manifest_bytes: bytes) -> tuple[str, str | None]:
    """The signature's state: ``("valid" | "unsigned" | "not checked" | "invalid", problem or None)``."""
    path = Path(case_dir) / SIGNATURE_NAME
    key = case_key()
    if not path.is_file() or path.is_symlink():
        if key is not None:
            return "unsigned", f"{SIGNATURE_NAME}: missing, but a case key was given: the manifest is not signed"
        return "unsigned", None
    if key is None:
        return "not checked", None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        expected = str(record["mac"])
    except (OSError, ValueError, KeyError, TypeError):
        return "invalid", f"{SIGNATURE_NAME}: unreadable"
    if not hmac.compare_digest(expected, mac(key, manifest_bytes)):
        return "invalid", (f"{SIGNATURE_NAME}: the signature does not match manifest.json: the manifest was changed "
                           "without the case key (or another key was given)")
    return "valid", None

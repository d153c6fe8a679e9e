"""Pre-flight: is unified audit log ingestion on? (exchange-platform-facts.md §5, Hawk #303)

With ingestion off, Search-UnifiedAuditLog returns nothing useful and a tool that does not check
"completes without error but collects no data". We stop with a clear error, or, with
``--enable-ingestion`` and a confirmation (or ``--yes``), turn it on with ``Set-AdminAuditLogConfig
-UnifiedAuditLogIngestionEnabled $true`` and say plainly what that does and does not give back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mia_bridge.bridge.backend import CmdletCall, ExoBackend
from mia_bridge.errors import CmdletError, IngestionDisabledError

ENABLE_EXPLANATION = (
    "Turning on unified audit log ingestion takes up to 60 minutes to apply and records activity only "
    "from then on: nothing that happened while it was off can be recovered."
)


@dataclass
class IngestionState:
    """Ingestion before the run, and whether this run enabled it (and when)."""

    enabled_before: bool | None
    enabled_now: bool | None
    enabled_by_us_at: datetime | None = None
    raw: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled_before": self.enabled_before,
            "enabled_now": self.enabled_now,
            "enabled_by_us_at": self.enabled_by_us_at.isoformat() if self.enabled_by_us_at else None,
        }


def read_ingestion(backend: ExoBackend) -> tuple[bool | None, dict[str, Any] | None]:
    """``Get-AdminAuditLogConfig``'s UnifiedAuditLogIngestionEnabled (None when absent)."""
    result = backend.invoke(CmdletCall("Get-AdminAuditLogConfig"))
    if not result.output:
        return None, None
    config = result.output[0]
    value = config.get("UnifiedAuditLogIngestionEnabled")
    if isinstance(value, str):
        value = value.strip().lower() == "true"
    return (bool(value) if value is not None else None), config


def ensure_ingestion(
    backend: ExoBackend,
    *,
    enable: bool,
    confirm: Callable[[str], bool],
    now: Callable[[], datetime],
) -> IngestionState:
    """Check ingestion; enable it when asked and confirmed; raise ``IngestionDisabledError`` otherwise."""
    try:
        enabled, raw = read_ingestion(backend)
    except CmdletError as exc:  # not offered to this identity: cannot check, say so, go on
        return IngestionState(enabled_before=None, enabled_now=None, raw={"error": exc.message})
    state = IngestionState(enabled_before=enabled, enabled_now=enabled, raw=raw)
    if enabled is not False:
        return state
    if not enable:
        raise IngestionDisabledError(
            "unified audit log ingestion is OFF in this tenant (Get-AdminAuditLogConfig: "
            "UnifiedAuditLogIngestionEnabled = False): audit searches would return nothing",
            cmdlet="Get-AdminAuditLogConfig",
            hint="rerun with --enable-ingestion (and --yes to skip the question) to turn it on; "
            + ENABLE_EXPLANATION,
        )
    question = f"Enable unified audit log ingestion now? {ENABLE_EXPLANATION}"
    if not confirm(question):
        raise IngestionDisabledError(
            "unified audit log ingestion is OFF and enabling it was declined",
            cmdlet="Set-AdminAuditLogConfig",
            hint="searches cannot return records while ingestion is off",
        )
    backend.invoke(CmdletCall("Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": True}))
    state.enabled_by_us_at = now()
    state.enabled_now, state.raw = read_ingestion(backend)
    return state

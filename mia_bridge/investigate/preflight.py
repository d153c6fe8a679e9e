"""Pre-flight: is unified audit log ingestion on? (exchange-platform-facts.md §5, Hawk #303)

With ingestion off, Search-UnifiedAuditLog returns nothing useful and a tool that does not check
"completes without error but collects no data". We stop with a clear error, or, with
``--enable-ingestion`` and a confirmation (or ``--yes``), turn it on with ``Set-AdminAuditLogConfig
-UnifiedAuditLogIngestionEnabled $true`` and say plainly what that does and does not give back.

A dehydrated tenant (``Get-OrganizationConfig`` ``IsDehydrated``, typical exactly where ingestion is off)
refuses the change until ``Enable-OrganizationCustomization`` ran: that runs first, under the same
confirmation. The new setting is read back a few times with pauses; reads lag by minutes (ScubaGear saw
about six), so "not visible yet" is reported as such, not as a failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mia_bridge.bridge.backend import CmdletCall, ExoBackend
from mia_bridge.errors import CmdletError, IngestionDisabledError

# Pauses before each read-back of the new setting (seconds): about 15 s in all, not the minutes it may take.
READBACK_DELAYS = (1.0, 4.0, 10.0)
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
    dehydrated: bool | None = None  # Get-OrganizationConfig IsDehydrated (None: not read)
    customization_enabled_by_us: bool = False
    readback: str = ""  # what reading the setting back showed

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled_before": self.enabled_before,
            "enabled_now": self.enabled_now,
            "enabled_by_us_at": self.enabled_by_us_at.isoformat() if self.enabled_by_us_at else None,
            "dehydrated": self.dehydrated,
            "customization_enabled_by_us": self.customization_enabled_by_us,
            "readback": self.readback,
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


def read_dehydrated(backend: ExoBackend) -> bool | None:
    """``Get-OrganizationConfig``'s IsDehydrated (None when it cannot be read)."""
    try:
        result = backend.invoke(CmdletCall("Get-OrganizationConfig"))
    except CmdletError:
        return None
    value = result.output[0].get("IsDehydrated") if result.output else None
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value) if value is not None else None


def ensure_ingestion(
    backend: ExoBackend,
    *,
    enable: bool,
    confirm: Callable[[str], bool],
    now: Callable[[], datetime],
    readback_delays: Sequence[float] = READBACK_DELAYS,
    sleep: Callable[[float], None] = time.sleep,
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
    state.dehydrated = read_dehydrated(backend)
    question = f"Enable unified audit log ingestion now? {ENABLE_EXPLANATION}"
    if state.dehydrated:
        question = (
            "Enable unified audit log ingestion now? The organization is dehydrated (IsDehydrated: True), so "
            "Enable-OrganizationCustomization runs first (it cannot be undone; it allows configuration "
            f"changes). {ENABLE_EXPLANATION}"
        )
    if not confirm(question):
        raise IngestionDisabledError(
            "unified audit log ingestion is OFF and enabling it was declined",
            cmdlet="Set-AdminAuditLogConfig",
            hint="searches cannot return records while ingestion is off",
        )
    if state.dehydrated:
        backend.invoke(CmdletCall("Enable-OrganizationCustomization"))
        state.customization_enabled_by_us = True
    backend.invoke(CmdletCall("Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": True}))
    state.enabled_by_us_at = now()
    waited = 0.0
    for delay in readback_delays:
        sleep(delay)
        waited += delay
        state.enabled_now, state.raw = read_ingestion(backend)
        if state.enabled_now:
            break
    if state.enabled_now:
        state.readback = f"read back as True after {waited:g} s"
    else:
        state.readback = (f"still read back as {state.enabled_now} after {waited:g} s: reads of a changed setting "
                          "lag by minutes; check again later with Get-AdminAuditLogConfig")
    return state

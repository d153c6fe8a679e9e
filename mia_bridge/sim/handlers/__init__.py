"""Simulated cmdlet handlers; importing this package registers them all (one module per family)."""

from mia_bridge.sim.handlers import (
    audit_config,
    connection,
    graph,
    mailbox,
    mailbox_audit_log,
    role_assignment,
    unified_audit_log,
)

__all__ = [
    "audit_config",
    "connection",
    "graph",
    "mailbox",
    "mailbox_audit_log",
    "role_assignment",
    "unified_audit_log",
]

"""Simulated cmdlet handlers; importing this package registers them all (one module per family)."""

from mia_bridge.sim.handlers import (
    audit_config,
    command_info,
    connection,
    graph,
    graph_messages,
    mailbox,
    mailbox_audit_log,
    message_trace,
    role_assignment,
    unified_audit_log,
)

__all__ = [
    "audit_config",
    "command_info",
    "connection",
    "graph",
    "graph_messages",
    "mailbox",
    "mailbox_audit_log",
    "message_trace",
    "role_assignment",
    "unified_audit_log",
]

"""Simulated cmdlet handlers; importing this package registers them all (one module per family)."""

from mia_bridge.sim.handlers import connection, unified_audit_log

__all__ = ["connection", "unified_audit_log"]

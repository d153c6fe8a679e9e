"""MailItemsAccessed and unified-audit-log analysis; the public API is in ``mia_bridge.analysis.api``."""

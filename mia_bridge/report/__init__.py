"""The human-readable investigation report (one self-contained HTML file)."""

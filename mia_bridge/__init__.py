"""mia-bridge: which mail did the attacker read, and what else did they do in this Microsoft 365 tenant."""

__version__ = "0.1.0"

__all__ = ["__version__"]

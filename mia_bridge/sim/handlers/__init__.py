"""Simulated cmdlet handlers; importing this package registers them all."""

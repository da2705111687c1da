"""Robustness runs against a live chatgate in front of the fake upstream: fuzz, faults, soak."""

"""Measurements behind bench.py and the study scripts: timing, the original project's methods, FLOP counts."""

"""Flink functions that wrap the pure ``stratiflow`` core, one concern each."""

"""Sensors: wait for a checkpoint sync's result."""

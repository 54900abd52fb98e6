"""Operators: sync a checkpoint, restore from one, activate a standby."""

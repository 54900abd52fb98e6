"""Triggers: async waits for the triggerer."""

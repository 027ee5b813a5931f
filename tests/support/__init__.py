"""Helpers shared by the integration tests (real servers and processes)."""

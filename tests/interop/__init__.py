"""Tests against real third-party servers (make test-interop)."""

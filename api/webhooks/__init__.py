"""Webhooks: a project's signed event receivers and their delivery logs (admin only)."""
from .routes import blp

__all__ = ["blp"]

"""Offline audits of a project's training set."""
from .routes import blp

__all__ = ["blp"]

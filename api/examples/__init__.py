"""Labelled examples: batch ingest, listing and one example with its label history."""
from .routes import blp

__all__ = ["blp"]

"""Model versions of a project and retrain requests."""
from .routes import blp

__all__ = ["blp"]

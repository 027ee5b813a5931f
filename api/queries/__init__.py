"""Review queries: lease the next one, read one, answer it."""
from .routes import blp

__all__ = ["blp"]

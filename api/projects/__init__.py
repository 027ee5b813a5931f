"""Projects, their tokens, statistics and label export."""
from .routes import blp

__all__ = ["blp"]

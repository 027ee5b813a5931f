"""``/projects/<pid>/annotators`` and ``/projects/<pid>/gold``."""
from .routes import blp

__all__ = ["blp"]

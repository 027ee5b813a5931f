"""Operations endpoints at the root: ``/healthz`` and ``/metrics``."""
from .routes import blp

__all__ = ["blp"]

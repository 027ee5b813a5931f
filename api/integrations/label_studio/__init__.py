"""Label Studio's ML backend protocol for one project: ``/integrations/label-studio/<pid>/``."""
from .routes import bp

__all__ = ["bp"]

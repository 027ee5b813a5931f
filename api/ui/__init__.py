"""The web pages people use: the annotator page (``/ui/``) and the data owner's overview
(``/ui/overview``).

Plain HTML, CSS and JavaScript served by the app (no build step, nothing from another
host). The pages hold no secrets and render nothing server-side: the browser keeps the
bearer token in ``sessionStorage`` and every action goes through the REST API under
``/api/v1``, the same one the SDK uses.
"""
from .routes import bp

__all__ = ["bp"]

"""HTTP-only clients of the labeling service: the Python client (``client``), a simulated
annotator (``annotator``), the benchmark (``bench``) and the ``python -m clients`` CLI
(``cli``, ``commands``, ``readers``).

    from clients import CincerClient, ApiError
    client = CincerClient("http://127.0.0.1:8000", token)
"""
from .client import ApiError, CincerClient, IngestError

__all__ = ["ApiError", "CincerClient", "IngestError"]

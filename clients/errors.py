"""The CLI's exit statuses and ``BadInput``, the error for anything the user gave that
cannot be used (reported on stderr with exit status 2)."""
from __future__ import annotations

EXIT_OK, EXIT_SERVICE, EXIT_BAD_INPUT = 0, 1, 2


class BadInput(Exception):
    """Something the user gave cannot be used; reported on stderr with exit status 2."""

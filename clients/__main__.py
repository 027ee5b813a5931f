"""``python -m clients``: see ``clients.cli``."""
from .cli import main

raise SystemExit(main())

"""``cincer-service`` command line: core commands plus commands that server packages plug in.

Core commands (``simulate``, ``bench``, ``audit``) are the modules of the
``cincer_service.commands`` package. ``serve`` and ``worker`` come from the ``api`` and
``tasks`` packages through the entry-point group of the same name, so the core never
imports the servers.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

CORE_COMMANDS = ("cincer_service.commands.simulate", "cincer_service.commands.bench",
                 "cincer_service.commands.audit", "cincer_service.commands.service_sim")


class UsageError(Exception):
    """Bad command-line input: reported on stderr with exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cincer-service", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name in CORE_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register_command(sub)
    for ep in entry_points(group="cincer_service.commands"):
        try:
            register = ep.load()
        except ModuleNotFoundError as exc:  # server extras not importable: core still works
            print(f"cincer-service: command {ep.name!r} unavailable ({exc})", file=sys.stderr)
            continue
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"cincer-service {args.command}: error: {exc}", file=sys.stderr)
        return 2


def parse_list(text: str, kind=str) -> list:
    """``"a,b,c"`` -> ``[a, b, c]`` converted with ``kind``; a bad item is a ``UsageError``."""
    try:
        return [kind(item.strip()) for item in text.split(",") if item.strip()]
    except ValueError as exc:
        raise UsageError(f"cannot parse {text!r}: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())

"""``examples``: list a project's examples, or show one with its label history.

    python -m clients PROJECT-ID examples list [--status S] [--source S] [--offset N]
                                               [--limit N | --all]
    python -m clients PROJECT-ID examples show EXAMPLE-ID
"""
from __future__ import annotations

from ..client import CincerClient
from ..errors import BadInput
from .common import add_action, add_group, add_page_options, emit


def register(sub, common) -> None:
    """Add the ``examples`` group."""
    actions = add_group(sub, common, "examples", "list examples, show one with its history")
    p = add_action(actions, common, "list", cmd_list, "one page of examples ({items, total})")
    p.add_argument("--status", help="pending, accepted, suspicious or reviewed")
    p.add_argument("--source")
    add_page_options(p)
    p.add_argument("--all", action="store_true", help="every page, not just one")
    p = add_action(actions, common, "show", cmd_show, "one example with its label history")
    p.add_argument("example_id", type=int, metavar="EXAMPLE-ID")


def cmd_list(client: CincerClient, args) -> int:
    """One page, or with ``--all`` every example as ``{items, total}``."""
    if args.all:
        if args.offset:
            raise BadInput("--all starts at the first example; drop --offset")
        items = list(client.iter_examples(args.project, args.status, args.source,
                                          page_size=args.limit))
        return emit({"items": items, "total": len(items)})
    return emit(client.list_examples(args.project, args.status, args.source, args.offset,
                                     args.limit))


def cmd_show(client: CincerClient, args) -> int:
    return emit(client.get_example(args.project, args.example_id))

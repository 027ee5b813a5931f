"""``webhooks``: a project's signed event receivers and their delivery logs (admin).

    python -m clients PROJECT-ID webhooks create RECEIVER-URL [--events a,b]
    python -m clients PROJECT-ID webhooks list
    python -m clients PROJECT-ID webhooks delete WEBHOOK-ID
    python -m clients PROJECT-ID webhooks deliveries WEBHOOK-ID [--offset N] [--limit N]
"""
from __future__ import annotations

from ..client import CincerClient
from .common import add_action, add_group, add_page_options, comma_list, emit


def register(sub, common) -> None:
    """Add the ``webhooks`` group."""
    actions = add_group(sub, common, "webhooks", "event receivers and their deliveries")
    p = add_action(actions, common, "create", cmd_create,
                   "register a receiver; its signing secret is printed only this once")
    p.add_argument("webhook_url", metavar="RECEIVER-URL", help="where events are POSTed")
    p.add_argument("--events", default=None, help="comma-separated events (default: all)")
    add_action(actions, common, "list", cmd_list, "the active receivers")
    p = add_action(actions, common, "delete", cmd_delete, "deactivate a receiver")
    p.add_argument("webhook_id", type=int, metavar="WEBHOOK-ID")
    p = add_action(actions, common, "deliveries", cmd_deliveries,
                   "one page of a receiver's delivery log, newest first")
    p.add_argument("webhook_id", type=int, metavar="WEBHOOK-ID")
    add_page_options(p)


def cmd_create(client: CincerClient, args) -> int:
    events = comma_list(args.events, "--events") if args.events is not None else None
    return emit(client.create_webhook(args.project, args.webhook_url, events))


def cmd_list(client: CincerClient, args) -> int:
    return emit({"items": client.list_webhooks(args.project)})


def cmd_delete(client: CincerClient, args) -> int:
    client.delete_webhook(args.project, args.webhook_id)
    return emit({"deleted": args.webhook_id})


def cmd_deliveries(client: CincerClient, args) -> int:
    return emit(client.list_deliveries(args.project, args.webhook_id, args.offset,
                                       args.limit))

"""``audits``: score the training set offline, read the reports, queue the top suspects.

    python -m clients PROJECT-ID audits create --detectors margin,self_influence [--top-k N]
    python -m clients PROJECT-ID audits list [--offset N] [--limit N]
    python -m clients PROJECT-ID audits show AUDIT-ID
    python -m clients PROJECT-ID audits enqueue AUDIT-ID [--top-k N]
"""
from __future__ import annotations

from ..client import CincerClient
from .common import add_action, add_group, add_page_options, comma_list, emit


def register(sub, common) -> None:
    """Add the ``audits`` group."""
    actions = add_group(sub, common, "audits", "offline audits of the training set")
    p = add_action(actions, common, "create", cmd_create, "queue an audit (admin)")
    p.add_argument("--detectors", required=True,
                   help="comma-separated detector names, e.g. margin,self_influence")
    p.add_argument("--top-k", type=int, default=20, help="suspects to report (default 20)")
    p = add_action(actions, common, "list", cmd_list, "one page of audits, newest first")
    add_page_options(p)
    p = add_action(actions, common, "show", cmd_show, "an audit's status and report")
    p.add_argument("audit_id", type=int, metavar="AUDIT-ID")
    p = add_action(actions, common, "enqueue", cmd_enqueue,
                   "turn a finished audit's top suspects into queries (admin)")
    p.add_argument("audit_id", type=int, metavar="AUDIT-ID")
    p.add_argument("--top-k", type=int, default=None,
                   help="how many suspects (default: the audit's top_k)")


def cmd_create(client: CincerClient, args) -> int:
    return emit(client.create_audit(args.project, comma_list(args.detectors, "--detectors"),
                                    args.top_k))


def cmd_list(client: CincerClient, args) -> int:
    return emit(client.list_audits(args.project, args.offset, args.limit))


def cmd_show(client: CincerClient, args) -> int:
    return emit(client.get_audit(args.project, args.audit_id))


def cmd_enqueue(client: CincerClient, args) -> int:
    return emit(client.enqueue_audit(args.project, args.audit_id, args.top_k))

"""``tokens``: mint, list and revoke a project's tokens (admin).

    python -m clients PROJECT-ID tokens create --role annotator [--name alice]
    python -m clients PROJECT-ID tokens list
    python -m clients PROJECT-ID tokens revoke TOKEN-ID
"""
from __future__ import annotations

from ..client import CincerClient
from .common import add_action, add_group, emit

ROLES = ("admin", "ingest", "annotator", "viewer")


def register(sub, common) -> None:
    """Add the ``tokens`` group."""
    actions = add_group(sub, common, "tokens", "mint, list and revoke project tokens")
    p = add_action(actions, common, "create", cmd_create,
                   "mint a token; its secret is printed only this once")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--name", default=None, help="a name for the token (default: the role)")
    add_action(actions, common, "list", cmd_list, "id, role, name, created_at, revoked")
    p = add_action(actions, common, "revoke", cmd_revoke,
                   "revoke a token: it stops working at once")
    p.add_argument("token_id", type=int, metavar="TOKEN-ID")


def cmd_create(client: CincerClient, args) -> int:
    return emit(client.create_token(args.project, args.role, args.name))


def cmd_list(client: CincerClient, args) -> int:
    return emit({"items": client.list_tokens(args.project)})


def cmd_revoke(client: CincerClient, args) -> int:
    client.revoke_token(args.project, args.token_id)
    return emit({"revoked": args.token_id})

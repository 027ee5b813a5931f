"""``models``: a project's model versions, and queueing a retrain (admin).

    python -m clients PROJECT-ID models list
    python -m clients PROJECT-ID models retrain
"""
from __future__ import annotations

from ..client import CincerClient
from .common import add_action, add_group, emit


def register(sub, common) -> None:
    """Add the ``models`` group."""
    actions = add_group(sub, common, "models", "model versions and retraining")
    add_action(actions, common, "list", cmd_list,
               "every model version with its training-set size and metrics")
    add_action(actions, common, "retrain", cmd_retrain,
               "queue a retrain on the current labels (admin)")


def cmd_list(client: CincerClient, args) -> int:
    return emit({"items": client.list_models(args.project)})


def cmd_retrain(client: CincerClient, args) -> int:
    return emit(client.retrain(args.project))

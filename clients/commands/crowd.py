"""``annotators``, ``gold`` and ``sources``: the crowd's records and the data's sources.

    python -m clients PROJECT-ID annotators list | suspend ANNOTATOR-ID | restore ANNOTATOR-ID
    python -m clients PROJECT-ID gold list | mark ID[,ID...] [--unmark]
    python -m clients PROJECT-ID sources list | apply --source S --from A --to B
"""
from __future__ import annotations

from ..client import CincerClient
from ..errors import BadInput
from .common import add_action, add_group, comma_list, emit


def register(sub, common) -> None:
    """Add the ``annotators``, ``gold`` and ``sources`` groups."""
    actions = add_group(sub, common, "annotators",
                        "annotators' agreement, gold accuracy and flags (admin/viewer)")
    add_action(actions, common, "list", cmd_annotators,
               "every annotator's record and Krippendorff's alpha")
    for name, func, what in (("suspend", cmd_suspend, "refuse their leases and answers"),
                             ("restore", cmd_restore, "accept them again")):
        p = add_action(actions, common, name, func, f"{what} (admin)")
        p.add_argument("annotator_id", type=int, metavar="ANNOTATOR-ID")
    actions = add_group(sub, common, "gold", "gold examples: trusted labels checked "
                                             "against annotators")
    add_action(actions, common, "list", cmd_gold_list, "the gold examples")
    p = add_action(actions, common, "mark", cmd_gold_mark,
                   "mark examples as gold: their current label is trusted (admin)")
    p.add_argument("ids", metavar="ID[,ID...]", help="example ids, comma-separated")
    p.add_argument("--unmark", action="store_true", help="no longer gold")
    actions = add_group(sub, common, "sources", "label-noise rate per source")
    add_action(actions, common, "list", cmd_sources,
               "each source's noise rate, interval, confusion; relabel proposals")
    p = add_action(actions, common, "apply", cmd_apply,
                   "apply one relabel proposal of a source (admin)")
    p.add_argument("--source", required=True)
    p.add_argument("--from", dest="from_label", required=True, help="class name or index")
    p.add_argument("--to", dest="to_label", required=True, help="class name or index")


def cmd_annotators(client: CincerClient, args) -> int:
    return emit(client.list_annotators(args.project))


def cmd_suspend(client: CincerClient, args) -> int:
    return emit(client.suspend_annotator(args.project, args.annotator_id))


def cmd_restore(client: CincerClient, args) -> int:
    return emit(client.restore_annotator(args.project, args.annotator_id))


def cmd_gold_list(client: CincerClient, args) -> int:
    return emit(client.list_gold(args.project))


def cmd_gold_mark(client: CincerClient, args) -> int:
    ids = []
    for part in comma_list(args.ids, "ids"):
        if not part.isdigit():
            raise BadInput(f"ids: {part!r} is not an example id")
        ids.append(int(part))
    return emit(client.mark_gold(args.project, ids, gold=not args.unmark))


def cmd_sources(client: CincerClient, args) -> int:
    return emit(client.list_sources(args.project))


def _label(text: str):
    return int(text) if text.isdigit() else text


def cmd_apply(client: CincerClient, args) -> int:
    return emit(client.apply_source_proposal(args.project, args.source,
                                             _label(args.from_label), _label(args.to_label)))

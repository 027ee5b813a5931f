"""``overview``: the data owner's overview (label x prediction cells with mismatch scores),
its cells, batch actions and the cleaning progress.

    python -m clients PROJECT-ID overview show
    python -m clients PROJECT-ID overview compute                          (admin)
    python -m clients PROJECT-ID overview cell LABEL PREDICTION [--min-score S --max-score S]
    python -m clients PROJECT-ID overview action relabel|confirm|remove --ids 1,2,3
                                                 [--label L] [--reason TEXT]     (admin)
    python -m clients PROJECT-ID overview progress [--png FILE]
"""
from __future__ import annotations

from ..client import CincerClient
from ..errors import BadInput
from .common import add_action, add_group, emit, int_list, label, note_digit_names


def register(sub, common) -> None:
    """Add the ``overview`` group."""
    actions = add_group(sub, common, "overview", "the data owner's overview and batch fixes")
    add_action(actions, common, "show", cmd_show, "the stored overview and its status")
    add_action(actions, common, "compute", cmd_compute,
               "(re)compute the overview from the latest model (admin)")
    p = add_action(actions, common, "cell", cmd_cell,
                   "one cell's examples within a mismatch-score range")
    p.add_argument("label", type=int, metavar="LABEL", help="given label (class index)")
    p.add_argument("prediction", type=int, metavar="PREDICTION", help="predicted class index")
    p.add_argument("--min-score", type=float, default=0.0)
    p.add_argument("--max-score", type=float, default=1.0)
    p = add_action(actions, common, "action", cmd_action,
                   "relabel, confirm or remove examples (admin)")
    p.add_argument("kind", choices=("relabel", "confirm", "remove"), metavar="ACTION",
                   help="relabel, confirm or remove")
    p.add_argument("--ids", required=True, help="comma-separated example ids")
    p.add_argument("--label", default=None,
                   help="the new label (relabel): class name or index")
    p.add_argument("--reason", default=None, help="kept in each example's label history")
    p = add_action(actions, common, "progress", cmd_progress,
                   "answers and label changes per model version")
    p.add_argument("--png", metavar="FILE", default=None,
                   help="write the progress plot here instead")


def cmd_show(client: CincerClient, args) -> int:
    return emit(client.get_overview(args.project))


def cmd_compute(client: CincerClient, args) -> int:
    return emit(client.request_overview(args.project))


def cmd_cell(client: CincerClient, args) -> int:
    return emit(client.overview_cell(args.project, args.label, args.prediction,
                                     args.min_score, args.max_score))


def cmd_action(client: CincerClient, args) -> int:
    if args.kind == "relabel" and args.label is None:
        raise BadInput("relabel needs --label (the new class name or index)")
    new_label = None
    if args.label is not None:
        project = client.get_project(args.project)
        note_digit_names(project, (args.label,))
        new_label = label(args.label, [str(c) for c in project["classes"]])
    return emit(client.overview_action(args.project, args.kind, int_list(args.ids, "--ids"),
                                       new_label, args.reason))


def cmd_progress(client: CincerClient, args) -> int:
    if args.png:
        data = client.overview_progress_png(args.project)
        try:
            with open(args.png, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            raise BadInput(f"cannot write {args.png}: {exc}") from None
        return emit({"written": args.png, "bytes": len(data)})
    return emit({"items": client.overview_progress(args.project)})

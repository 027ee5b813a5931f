"""``projects``: create (from flags or a JSON file), list, show, update, delete, history.

    python -m clients projects create --name digits --classes 0,1,2 --input-shape 64
    python -m clients projects create --file spec.json [--threshold 0.3 ...]
    python -m clients projects list
    python -m clients PROJECT-ID projects show | history
    python -m clients PROJECT-ID projects update --threshold 0.3 --retrain-every 5
    python -m clients PROJECT-ID projects delete --yes      (global admin token)
"""
from __future__ import annotations

from ..client import CincerClient
from ..errors import BadInput
from .common import add_action, add_group, comma_list, emit, int_list, read_json_object

NUMBER_SETTINGS = ("threshold", "strategy", "damping", "bootstrap_size", "queue_order")
CROWD_SETTINGS = ("answers_per_query", "max_answers_per_query", "consensus_confidence",
                  "gold_share", "min_annotator_accuracy")


def register(sub, common) -> None:
    """Add the ``projects`` group."""
    actions = add_group(sub, common, "projects", "create, list, show, update, delete projects")

    p = add_action(actions, common, "create", cmd_create, "create a project (admin token)",
                   needs_project=False)
    p.add_argument("--file", metavar="SPEC.json",
                   help="the project as a JSON object ({name, classes, input_shape, ...}); "
                        "the flags below override its values")
    p.add_argument("--name")
    p.add_argument("--classes", help="comma-separated class names, e.g. cat,dog")
    p.add_argument("--input-shape", help="comma-separated dimensions, e.g. 28,28,1")
    p.add_argument("--input-kind", help="tabular (default), image or text")
    p.add_argument("--feature-names", help="tabular: comma-separated, one per input number")
    p.add_argument("--holdout-share", type=float,
                   help="share of the bootstrap held out to score every model version")
    p.add_argument("--model-kind", help="lr, fc or cnn")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--warm-epochs", type=int)
    add_setting_flags(p)

    add_action(actions, common, "list", cmd_list, "the projects this token may see",
               needs_project=False)
    add_action(actions, common, "show", cmd_show, "one project with its settings")

    p = add_action(actions, common, "update", cmd_update,
                   "change settings (admin); name, classes and input shape are fixed")
    p.add_argument("--file", metavar="CHANGES.json", help="the changes as a JSON object; "
                                                          "the flags override its values")
    add_setting_flags(p)

    p = add_action(actions, common, "delete", cmd_delete,
                   "delete the project with all its data (global admin token)")
    p.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")

    add_action(actions, common, "history", cmd_history,
               "settings changes: who changed what, from what to what")


def add_setting_flags(parser) -> None:
    """The settings a project may change (and be created with)."""
    parser.add_argument("--threshold", type=float, help="margin threshold in [0, 1]")
    parser.add_argument("--strategy", help="counter-example strategy, e.g. top_fisher")
    parser.add_argument("--damping", type=float)
    parser.add_argument("--bootstrap-size", type=int)
    parser.add_argument("--retrain-mode", help="scratch or warm")
    parser.add_argument("--retrain-every", type=int, metavar="N",
                        help="retrain every N answers")
    parser.add_argument("--query-budget", metavar="B",
                        help="about B questions per 100 examples (the threshold follows "
                             "recent margins), or 'none' for the fixed threshold")
    parser.add_argument("--queue-order", help="priority or fifo")
    parser.add_argument("--answers-per-query", type=int, metavar="N",
                        help="answers a query takes at least (1: the first answer decides)")
    parser.add_argument("--max-answers-per-query", type=int, metavar="N",
                        help="answers a query may take while its consensus is unsure")
    parser.add_argument("--consensus-confidence", type=float, metavar="P",
                        help="posterior each side needs before the consensus decides")
    parser.add_argument("--gold-share", type=float, metavar="S",
                        help="share of leases that are gold checks (when gold exists)")
    parser.add_argument("--min-annotator-accuracy", type=float, metavar="A",
                        help="estimated accuracy under which an annotator is flagged")


def setting_values(args) -> dict:
    """The settings given as flags (``retrain`` as ``{mode?, every_n_answers?}``)."""
    values = {key: getattr(args, key) for key in NUMBER_SETTINGS
              if getattr(args, key) is not None}
    if args.query_budget is not None:
        values["query_budget"] = budget(args.query_budget)
    retrain = {key: value for key, value in (("mode", args.retrain_mode),
                                             ("every_n_answers", args.retrain_every))
               if value is not None}
    if retrain:
        values["retrain"] = retrain
    crowd = {key: getattr(args, key) for key in CROWD_SETTINGS
             if getattr(args, key, None) is not None}
    if crowd:
        values["crowd"] = crowd
    return values


def budget(text: str) -> float | None:
    """``--query-budget``: a number, or ``none`` (back to the fixed threshold)."""
    if text.strip().lower() in ("none", "null", "off"):
        return None
    try:
        return float(text)
    except ValueError:
        raise BadInput(f"--query-budget: a number or 'none', got {text!r}") from None


def merge(base: dict, flags: dict) -> dict:
    """``base`` (from a file) with ``flags`` over it; nested dicts merge one level deep."""
    merged = dict(base)
    for key, value in flags.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def cmd_create(client: CincerClient, args) -> int:
    """Build the spec from ``--file`` and the flags, check the required parts, send it."""
    base = read_json_object(args.file) if args.file else {}
    flags = setting_values(args)
    if args.name is not None:
        flags["name"] = args.name
    if args.classes is not None:
        flags["classes"] = comma_list(args.classes, "--classes")
    if args.input_shape is not None:
        flags["input_shape"] = int_list(args.input_shape, "--input-shape")
    if args.input_kind is not None:
        flags["input_kind"] = args.input_kind
    if args.feature_names is not None:
        flags["feature_names"] = comma_list(args.feature_names, "--feature-names")
    if args.holdout_share is not None:
        flags["holdout_share"] = args.holdout_share
    model = {key: value for key, value in (("kind", args.model_kind), ("seed", args.seed),
                                           ("max_epochs", args.max_epochs),
                                           ("warm_epochs", args.warm_epochs))
             if value is not None}
    if model:
        flags["model"] = model
    spec = merge(base, flags)
    required = ("name", "classes") + (() if spec.get("input_kind") == "text"
                                      else ("input_shape",))
    missing = [key for key in required if key not in spec]
    if missing:
        raise BadInput("a project needs " + ", ".join(missing) + ": pass --"
                       + ", --".join(m.replace("_", "-") for m in missing)
                       + " or put them in --file")
    return emit(client.create_project(spec))


def cmd_list(client: CincerClient, args) -> int:
    """Print ``{"items": [...]}``."""
    return emit({"items": client.list_projects()})


def cmd_show(client: CincerClient, args) -> int:
    return emit(client.get_project(args.project))


def cmd_update(client: CincerClient, args) -> int:
    """Send the changes from ``--file`` and the flags; nothing to change is bad input."""
    changes = merge(read_json_object(args.file) if args.file else {}, setting_values(args))
    if not changes:
        raise BadInput("nothing to change: pass --threshold, --strategy, --damping, "
                       "--bootstrap-size, --retrain-mode, --retrain-every, --query-budget, "
                       "--queue-order, a crowd setting (--answers-per-query ...) or --file")
    return emit(client.update_project(args.project, changes))


def cmd_delete(client: CincerClient, args) -> int:
    """Delete only with ``--yes``."""
    if not args.yes:
        raise BadInput(f"deleting project {args.project} removes all its examples, labels, "
                       "queries, models, audits and tokens; pass --yes to confirm")
    client.delete_project(args.project)
    return emit({"deleted": args.project})


def cmd_history(client: CincerClient, args) -> int:
    return emit({"items": client.project_history(args.project)})

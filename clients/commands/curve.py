"""``curve``: the cleaning curve, a project's scores on its evaluation set (examples
ingested with ``split: "evaluation"``) per model version, against the answers given.

    python -m clients PROJECT-ID curve                 (one JSON line, as every command)
    python -m clients PROJECT-ID curve --table         (an aligned text table)
    python -m clients PROJECT-ID curve --png FILE      (the plot)
"""
from __future__ import annotations

from ..client import CincerClient
from ..errors import EXIT_OK, BadInput
from .common import emit

COLUMNS = (("version", "version"), ("answers", "answers"), ("n", "n"),
           ("accuracy", "accuracy"), ("f1_macro", "macro-F1"), ("log_loss", "log loss"),
           ("ece", "ECE"))


def register(sub, common) -> None:
    """Add the ``curve`` subcommand."""
    p = sub.add_parser("curve", parents=[common],
                       help="the cleaning curve: evaluation-set scores per model version",
                       description="Accuracy, macro-F1, log loss and ECE on the evaluation "
                                   "set (examples ingested with split evaluation) of every "
                                   "model version, with the answers given before it.")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--table", action="store_true",
                       help="print a text table instead of JSON")
    shown.add_argument("--png", metavar="FILE", default=None,
                       help="write the plot (PNG) here instead")
    p.set_defaults(func=cmd_curve)


def table(points: list[dict]) -> str:
    """The curve as an aligned text table; metrics of unscored versions show their status."""
    rows = [[title for _, title in COLUMNS]]
    for point in points:
        row = []
        for key, _ in COLUMNS:
            value = point.get(key)
            if value is None:
                value = "-" if key == "answers" else point.get("status", "-")
            elif isinstance(value, float):
                value = f"{value:.3f}"
            row.append(str(value))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows)


def cmd_curve(client: CincerClient, args) -> int:
    """Print the curve (JSON or a table), or write its plot."""
    if args.png:
        data = client.cleaning_curve_png(args.project)
        try:
            with open(args.png, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            raise BadInput(f"cannot write {args.png}: {exc}") from None
        return emit({"written": args.png, "bytes": len(data)})
    curve = client.cleaning_curve(args.project)
    if not args.table:
        return emit(curve)
    if not curve["points"]:
        print("no model version yet")
    elif not any(p.get("status") == "ok" for p in curve["points"]):
        print("no model version was scored on an evaluation set: ingest examples with "
              "split \"evaluation\" (the next retrain scores them)")
    else:
        print(table(curve["points"]))
    return EXIT_OK

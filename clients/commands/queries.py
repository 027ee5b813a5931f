"""``queries``: list, show, lease the next, answer, release (skip) and correct queries.

    python -m clients PROJECT-ID queries list [--status open|leased|answered|computing]
    python -m clients PROJECT-ID queries show QUERY-ID
    python -m clients PROJECT-ID queries next                  (prints null when none is open)
    python -m clients PROJECT-ID queries answer QUERY-ID --label L [--counterexample-label L
                                                                    | --not-sure]
    python -m clients PROJECT-ID queries release QUERY-ID
    python -m clients PROJECT-ID queries correct QUERY-ID --label L [...] --reason TEXT

Labels are class names or indices (digits are read as an index).
"""
from __future__ import annotations

from ..client import CincerClient
from ..errors import BadInput
from .common import add_action, add_group, add_page_options, emit, label, note_digit_names


def register(sub, common) -> None:
    """Add the ``queries`` group."""
    actions = add_group(sub, common, "queries",
                        "list, show, lease, answer, release and correct queries")
    p = add_action(actions, common, "list", cmd_list, "one page of queries ({items, total})")
    p.add_argument("--status", help="computing, open, leased or answered")
    add_page_options(p)
    p = add_action(actions, common, "show", cmd_show, "one query, with its answer if any")
    p.add_argument("query_id", type=int, metavar="QUERY-ID")
    add_action(actions, common, "next", cmd_next,
               "lease the next open query (annotator); null when none is open")
    p = add_action(actions, common, "answer", cmd_answer, "answer a leased query (annotator)")
    p.add_argument("query_id", type=int, metavar="QUERY-ID")
    add_label_flags(p)
    p = add_action(actions, common, "release", cmd_release,
                   "give a leased query back, open for the next annotator")
    p.add_argument("query_id", type=int, metavar="QUERY-ID")
    p = add_action(actions, common, "correct", cmd_correct, "correct your answer to a query")
    p.add_argument("query_id", type=int, metavar="QUERY-ID")
    add_label_flags(p)
    p.add_argument("--reason", required=True, help="why (kept in the label history)")


def add_label_flags(parser) -> None:
    parser.add_argument("--label", required=True,
                        help="the example's true label: class name or index")
    parser.add_argument("--counterexample-label", default=None,
                        help="the counter-example's true label (needed when it has one)")
    parser.add_argument("--not-sure", action="store_true",
                        help="unsure about the counter-example: leave its label alone")


def labels(client: CincerClient, args) -> tuple:
    """The typed labels by the one label rule, read with the project's classes."""
    if args.not_sure and args.counterexample_label is not None:
        raise BadInput("give --counterexample-label or --not-sure, not both")
    for text in (args.label, args.counterexample_label):
        label(text)                     # an empty label is refused before asking the service
    project = client.get_project(args.project)
    classes = [str(c) for c in project["classes"]]
    note_digit_names(project, (args.label, args.counterexample_label))
    return (label(args.label, classes), label(args.counterexample_label, classes),
            args.not_sure)


def cmd_list(client: CincerClient, args) -> int:
    return emit(client.list_queries(args.project, args.status, args.offset, args.limit))


def cmd_show(client: CincerClient, args) -> int:
    return emit(client.get_query(args.project, args.query_id))


def cmd_next(client: CincerClient, args) -> int:
    return emit(client.next_query(args.project))


def cmd_answer(client: CincerClient, args) -> int:
    example, counterexample, not_sure = labels(client, args)
    return emit(client.answer_query(args.project, args.query_id, example, counterexample,
                                    not_sure))


def cmd_release(client: CincerClient, args) -> int:
    return emit(client.release_query(args.project, args.query_id))


def cmd_correct(client: CincerClient, args) -> int:
    example, counterexample, not_sure = labels(client, args)
    return emit(client.correct_answer(args.project, args.query_id, example, counterexample,
                                      args.reason, not_sure))

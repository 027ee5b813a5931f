"""Helpers the command groups share: nested subcommands, JSON output, and parsing the
values users type (comma lists, labels, JSON files) into what the API takes; anything that
cannot be used raises ``BadInput`` (exit status 2)."""
from __future__ import annotations

import json
import sys

from ..errors import EXIT_OK, BadInput
from ..readers import digit_names, label_note


def add_group(sub, common, name: str, help: str):
    """A subcommand ``name`` with its own actions (``python -m clients [PID] name ACTION``);
    returns the actions' subparsers, to which ``add_action`` adds each action."""
    parser = sub.add_parser(name, parents=[common], help=help, description=help)
    return parser.add_subparsers(dest="action", metavar="ACTION", required=True)


def add_action(actions, common, name: str, func, help: str, needs_project: bool = True):
    """One action of a group; ``func(client, args)`` runs it."""
    parser = actions.add_parser(name, parents=[common], help=help, description=help)
    parser.set_defaults(func=func, needs_project=needs_project)
    return parser


def add_page_options(parser, limit: int = 50) -> None:
    """``--offset`` and ``--limit`` of a paginated listing."""
    parser.add_argument("--offset", type=int, default=0, help="first item (default 0)")
    parser.add_argument("--limit", type=int, default=limit,
                        help=f"page size (default {limit})")


def emit(value) -> int:
    """Print ``value`` as one line of JSON on stdout; exit status 0."""
    print(json.dumps(value))
    sys.stdout.flush()
    return EXIT_OK


def comma_list(text: str, what: str) -> list[str]:
    """``a,b,c`` as a list of non-empty, stripped strings."""
    items = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise BadInput(f"{what}: expected a comma-separated list without empty entries, "
                       f"got {text!r}")
    return items


def int_list(text: str, what: str) -> list[int]:
    """``1,2,3`` as a list of integers."""
    try:
        return [int(item) for item in comma_list(text, what)]
    except ValueError:
        raise BadInput(f"{what}: expected comma-separated integers, got {text!r}") from None


def label(text: str | None, classes=None):
    """A label as typed, by the readers' one rule (``clients.readers.parse_label``): a
    class name (a string) in a project whose class names are digits (``classes``), else
    digits are a class index (an int) and anything else a class name (a string). The
    service checks it against the project."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        raise BadInput("a label must not be empty: give a class name or index")
    if classes is not None and digit_names(classes):
        return text
    return int(text) if text.isdigit() else text


def note_digit_names(project: dict, texts) -> None:
    """Print ``readers.label_note`` (one line, stderr) when one of the labels typed as
    ``texts`` is digits that are read as a class name."""
    note = label_note(project)
    if note and any(t is not None and t.strip().isdigit() for t in texts):
        print(note, file=sys.stderr)


def read_json_object(path: str) -> dict:
    """The JSON object in file ``path`` (``-`` reads stdin)."""
    try:
        if path == "-":
            value = json.load(sys.stdin)
        else:
            with open(path) as handle:
                value = json.load(handle)
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    except ValueError as exc:
        raise BadInput(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadInput(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value

"""Every subcommand's usage line names the program, the optional project id and the
subcommand, and nothing of the top-level usage (it used to read
``... PROJECT-ID COMMAND [options] ingest [-h] ...``)."""
import argparse
import re
import subprocess
import sys

from clients.cli import build_parser, main


def _subparsers(parser):
    """(words, parser) for every subcommand and action, recursively."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield [name], sub
                for words, nested in _subparsers(sub):
                    yield [name, *words], nested


def test_every_usage_line_is_clean():
    found = list(_subparsers(build_parser()))
    assert len(found) > 30                                 # commands and their actions
    for words, parser in found:
        usage = " ".join(parser.format_usage().split())
        head = f"usage: python -m clients [PROJECT-ID] {' '.join(words)} [-h]"
        assert usage.startswith(head), usage
        assert "COMMAND" not in usage and "[options]" not in usage, usage
        assert usage.count("python -m clients") == 1, usage


def test_ingest_help_shows_the_clean_usage_and_the_formats(capsys):
    assert main(["ingest", "-h"]) == 0
    out = capsys.readouterr().out
    first = " ".join(out.split("\n\n")[0].split())
    assert re.match(r"usage: python -m clients \[PROJECT-ID\] ingest \[-h\] ", first), first
    assert "COMMAND" not in first
    for fmt in (".csv", ".npz", ".jsonl", ".txt", "LABEL<TAB>TEXT"):
        assert fmt in out


def test_python_dash_m_clients_usage(tmp_path):
    done = subprocess.run([sys.executable, "-m", "clients", "queries", "answer", "-h"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m clients [PROJECT-ID] queries answer [-h]")
    top = subprocess.run([sys.executable, "-m", "clients", "-h"], capture_output=True,
                         text=True, timeout=60)
    assert top.stdout.startswith("usage: python -m clients [--url URL] [--token TOKEN] "
                                 "[PROJECT-ID] COMMAND [options]")

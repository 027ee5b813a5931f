"""``clients.cli``: the leading PROJECT-ID, the parser's commands, exit codes of ``main``
for usage errors, service refusals and failures, and ``python -m clients``."""
import json
import subprocess
import sys

from clients.cli import build_parser, main, split_project

from .inputs import write_csv


def test_split_project():
    assert split_project(["--url", "u", "7", "stats"]) == (["--url", "u", "stats"], 7)
    assert split_project(["--quiet", "3", "ingest", "f.csv"]) == (["--quiet", "ingest",
                                                                  "f.csv"], 3)
    assert split_project(["bench", "--json"]) == (["bench", "--json"], None)
    assert split_project(["--token=t", "12", "export"]) == (["--token=t", "export"], 12)


def test_parser_has_every_command_in_order():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == ["ingest", "annotate", "export", "import", "stats",
                                 "wait-idle", "curve", "bench", "projects", "tokens", "examples",
                                 "queries", "models",
                                 "audits", "overview", "annotators", "gold", "sources",
                                 "webhooks", "health", "metrics",
                                 "openapi", "workers"]
    assert sub.choices["bench"].get_default("needs_project") is False
    actions = {name: list(next(a for a in parser._actions if a.dest == "action").choices)
               for name, parser in sub.choices.items()
               if any(a.dest == "action" for a in parser._actions)}
    assert actions == {
        "projects": ["create", "list", "show", "update", "delete", "history"],
        "tokens": ["create", "list", "revoke"],
        "examples": ["list", "show"],
        "queries": ["list", "show", "next", "answer", "release", "correct"],
        "models": ["list", "retrain"],
        "audits": ["create", "list", "show", "enqueue"],
        "overview": ["show", "compute", "cell", "action", "progress"],
        "annotators": ["list", "suspend", "restore"],
        "gold": ["list", "mark"],
        "sources": ["list", "apply"],
        "webhooks": ["create", "list", "delete", "deliveries"]}
    projects = sub.choices["projects"]._actions[-1].choices
    assert projects["create"].get_default("needs_project") is False
    assert projects["show"].get_default("needs_project") is True


def test_service_refusals_and_usage_exit_2(fake, tmp_path, capsys, monkeypatch):
    path = write_csv(tmp_path / "d.csv", [[0, 1, 2, 3, 0, 1]])
    assert main(["9", "ingest", path, "--quiet"]) == 2               # unknown project: 404
    assert "404 not_found" in capsys.readouterr().err
    assert main(["--token", "wrong", "1", "stats"]) == 2              # 401
    assert "401 unauthorized" in capsys.readouterr().err
    assert main(["stats"]) == 2                                       # no project
    assert main(["1", "frobnicate"]) == 2                             # unknown command
    monkeypatch.delenv("CINCER_TOKEN")
    assert main(["1", "stats"]) == 2
    assert "no token" in capsys.readouterr().err


def test_project_from_the_environment(fake, monkeypatch, capsys):
    monkeypatch.setenv("CINCER_PROJECT", "1")
    assert main(["stats"]) == 0
    assert json.loads(capsys.readouterr().out)["model_version"] == 1


def test_server_errors_and_unreachable_exit_1(fake, capsys):
    service, _ = fake
    service.fail_next = [500]
    assert main(["1", "stats"]) == 1
    assert "500 boom" in capsys.readouterr().err
    assert main(["--url", "http://127.0.0.1:9", "--request-timeout", "2", "1", "stats"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_module_entry_point(fake):
    _, url = fake
    done = subprocess.run([sys.executable, "-m", "clients", "--url", url, "1", "stats"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model_version"] == 1
    done = subprocess.run([sys.executable, "-m", "clients", "--url", url, "1", "ingest"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage" in done.stderr

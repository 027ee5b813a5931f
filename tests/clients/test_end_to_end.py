"""The CLI against the real API: a werkzeug server on 127.0.0.1 in a thread, over a service
context on temporary SQLite with jobs run inline, driven through ``clients.cli.main`` from
creating a project to deleting it. Also checks that the CLI covers every documented
endpoint."""
import inspect
import json
import re
import threading

import numpy as np
import pytest
from werkzeug.serving import make_server

from api import create_app
from cincer_service.datasets import inject_noise, load_dataset
from cincer_service.service import (
    Settings,
    access,
    build_context,
    runner,
)
from clients import client as client_module
from clients.cli import build_parser, main
from clients.client import CincerClient

ADMIN = "admin-secret-for-cli-tests"
BOOTSTRAP = 60


@pytest.fixture
def server(tmp_path, monkeypatch):
    """The URL of a real API server; CINCER_URL points at it, no token in the environment."""
    ctx = build_context(Settings(data_dir=str(tmp_path / "data"), admin_token=ADMIN))
    ctx.set_dispatcher(runner.inline_dispatcher(ctx))
    access.ensure_admin_token(ctx, ADMIN)
    app = create_app(service=ctx, config={"TESTING": True})
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{http.server_port}"
    monkeypatch.setenv("CINCER_URL", url)
    monkeypatch.delenv("CINCER_TOKEN", raising=False)
    monkeypatch.delenv("CINCER_PROJECT", raising=False)
    yield url
    http.shutdown()
    thread.join(10)


@pytest.fixture(scope="module")
def breast_csv(tmp_path_factory):
    """80 noisy breast examples as a CSV file (30 features, label by class name)."""
    data = load_dataset("breast", seed=0)
    noisy, _ = inject_noise(data.y_train, 2, 0.2, seed=0)
    path = tmp_path_factory.mktemp("csv") / "breast.csv"
    header = ",".join(f"f{i}" for i in range(30)) + ",label,external_id"
    rows = [",".join(f"{v:.6g}" for v in np.asarray(data.X_train[i]).ravel())
            + f",{int(noisy[i])},{i}" for i in range(BOOTSTRAP + 20)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return str(path)


class Cli:
    """``main(argv)`` with its exit status and parsed stdout."""

    def __init__(self, capsys):
        self.capsys = capsys
        self.err = ""

    def __call__(self, token, *argv, expect=0):
        code = main(["--token", token, *map(str, argv)])
        out, self.err = self.capsys.readouterr()
        assert code == expect, (argv, code, out, self.err)
        if expect == 0 and out.strip():
            return json.loads(out)
        return out


def test_cli_drives_a_project_from_creation_to_deletion(server, breast_csv, capsys, tmp_path):
    cli = Cli(capsys)
    assert cli(ADMIN, "health")["status"] == "ok"

    # -- projects ---------------------------------------------------------------------------
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": "from-file", "classes": ["malignant", "benign"],
                                "input_shape": [30], "model": {"kind": "lr"}}))
    project = cli(ADMIN, "projects", "create", "--file", spec, "--name", "breast",
                  "--model-kind", "lr", "--max-epochs", 60, "--bootstrap-size", BOOTSTRAP,
                  "--retrain-mode", "warm", "--retrain-every", 3)
    pid = project["id"]
    assert project["name"] == "breast" and project["classes"] == ["malignant", "benign"]
    assert project["model"]["max_epochs"] == 60 and project["retrain"]["mode"] == "warm"
    cli(ADMIN, "projects", "create", "--name", "x", expect=2)           # no classes/shape
    assert "needs classes, input_shape" in cli.err
    cli(ADMIN, "projects", "create", "--name", "x", "--classes", "a,b", "--input-shape", "3",
        "--threshold", 7, expect=2)                                      # 422
    assert "422" in cli.err and "threshold" in cli.err
    assert [p["id"] for p in cli(ADMIN, "projects", "list")["items"]] == [pid]
    assert cli(ADMIN, pid, "projects", "show")["bootstrap_size"] == BOOTSTRAP

    # -- tokens -----------------------------------------------------------------------------
    tokens = {role: cli(ADMIN, pid, "tokens", "create", "--role", role, "--name", f"my-{role}")
              for role in ("admin", "ingest", "annotator", "viewer")}
    assert all(t["token"] for t in tokens.values())
    listed = cli(ADMIN, pid, "tokens", "list")["items"]
    assert [t["name"] for t in listed] == ["my-admin", "my-ingest", "my-annotator", "my-viewer"]
    assert all(set(t) == {"id", "project_id", "role", "name", "created_at", "revoked"}
               for t in listed)
    cli(tokens["viewer"]["token"], pid, "tokens", "list", expect=2)      # 403
    assert "403" in cli.err
    cli(ADMIN, pid, "tokens", "create", "--role", "wizard", expect=2)   # argparse choices

    # -- ingest, examples -------------------------------------------------------------------
    ingest, annotator = tokens["ingest"]["token"], tokens["annotator"]["token"]
    viewer = tokens["viewer"]["token"]
    summary = cli(ingest, pid, "ingest", breast_csv, "--quiet")
    assert summary["ingested"] == BOOTSTRAP + 20
    assert cli(viewer, pid, "wait-idle", "--timeout", 120)["model_version"] >= 1
    page = cli(viewer, pid, "examples", "list", "--status", "accepted", "--limit", 5)
    assert len(page["items"]) == 5 and page["total"] >= BOOTSTRAP
    everything = cli(viewer, pid, "examples", "list", "--all", "--limit", 30)
    assert everything["total"] == BOOTSTRAP + 20 == len(everything["items"])
    first = page["items"][0]["id"]
    shown = cli(viewer, pid, "examples", "show", first)
    assert shown["id"] == first and shown["history"][0]["why"] == "ingest"
    cli(viewer, pid, "examples", "show", 999999, expect=2)
    assert "404" in cli.err

    # -- queries ----------------------------------------------------------------------------
    open_queries = cli(viewer, pid, "queries", "list", "--status", "open", "--limit", 500)
    assert open_queries["total"] > 1
    leased = cli(annotator, pid, "queries", "next")
    assert leased["status"] == "leased"
    qid = leased["id"]
    assert cli(viewer, pid, "queries", "show", qid)["id"] == qid
    cli(viewer, pid, "queries", "answer", qid, "--label", "benign", expect=2)   # 403
    released = cli(annotator, pid, "queries", "release", qid)
    assert released["status"] == "open"
    leased = cli(annotator, pid, "queries", "next")
    qid = leased["id"]
    ce = ["--counterexample-label", "malignant"] if leased["counterexample"] else []
    answered = cli(annotator, pid, "queries", "answer", qid, "--label", "benign", *ce)
    assert answered["status"] == "answered"
    assert answered["answer"]["example_label_name"] == "benign"
    ce = ["--counterexample-label", "0"] if leased["counterexample"] else []
    corrected = cli(annotator, pid, "queries", "correct", qid, "--label", "0", *ce,
                    "--reason", "misclicked")
    assert corrected["answer"]["example_label"] == 0
    cli(annotator, pid, "queries", "correct", qid, "--label", "0", expect=2)  # no --reason
    cli(annotator, pid, "queries", "answer", qid, "--label", "0",
        "--counterexample-label", "1", "--not-sure", expect=2)
    assert "not both" in cli.err
    cli(annotator, pid, "queries", "answer", qid, "--label", "nope", expect=2)   # 409/422
    assert cli(viewer, pid, "queries", "list", "--status", "answered")["total"] == 1

    # -- models -----------------------------------------------------------------------------
    models = cli(viewer, pid, "models", "list")["items"]
    assert models and models[0]["version"] == 1
    assert cli(ADMIN, pid, "models", "retrain")["status"] == "queued"
    cli(viewer, pid, "models", "retrain", expect=2)
    assert len(cli(viewer, pid, "models", "list")["items"]) > len(models)

    # -- audits -----------------------------------------------------------------------------
    audit = cli(ADMIN, pid, "audits", "create", "--detectors", "margin", "--top-k", 5)
    assert audit["detectors"] == ["margin"]
    audits = cli(viewer, pid, "audits", "list")
    assert audits["items"][0]["id"] == audit["id"] and audits["total"] == 2   # + bootstrap
    shown = cli(viewer, pid, "audits", "show", audit["id"])
    assert shown["status"] == "done" and len(shown["suspects"]) == 5
    enqueued = cli(tokens["admin"]["token"], pid, "audits", "enqueue", audit["id"],
                   "--top-k", 3)
    assert enqueued["audit_id"] == audit["id"]
    cli(ADMIN, pid, "audits", "create", "--detectors", "astrology", expect=2)

    # -- overview and progress --------------------------------------------------------------
    assert "status" in cli(viewer, pid, "overview", "show")
    assert isinstance(cli(viewer, pid, "overview", "progress")["items"], list)
    png = tmp_path / "progress.png"
    assert cli(viewer, pid, "overview", "progress", "--png", png)["bytes"] > 0
    assert png.read_bytes().startswith(b"\x89PNG")

    # -- settings ---------------------------------------------------------------------------
    updated = cli(tokens["admin"]["token"], pid, "projects", "update", "--threshold", 0.3,
                  "--retrain-every", 5)
    assert updated["threshold"] == 0.3 and updated["retrain"]["every_n_answers"] == 5
    history = cli(viewer, pid, "projects", "history")["items"]
    assert history[-1]["actor"] == "my-admin"
    assert history[-1]["changes"]["threshold"]["new"] == 0.3
    cli(ADMIN, pid, "projects", "update", expect=2)                     # nothing to change
    cli(ADMIN, pid, "projects", "update", "--damping", -1, expect=2)    # 422
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({"name": "renamed"}))
    cli(ADMIN, pid, "projects", "update", "--file", fixed, expect=2)    # 422: fixed
    assert "cannot be changed" in cli.err
    cli(ADMIN, pid, "projects", "update", "--bootstrap-size", 10, expect=2)   # 409
    assert "409" in cli.err

    # -- revoke, then delete ----------------------------------------------------------------
    cli(ADMIN, pid, "tokens", "revoke", tokens["viewer"]["id"])
    cli(viewer, pid, "stats", expect=2)
    assert "401" in cli.err
    cli(ADMIN, pid, "tokens", "revoke", tokens["viewer"]["id"], expect=2)     # 409
    cli(ADMIN, pid, "projects", "delete", expect=2)                            # no --yes
    assert "--yes" in cli.err
    cli(tokens["admin"]["token"], pid, "projects", "delete", "--yes", expect=2)   # 403
    assert cli(ADMIN, pid, "projects", "delete", "--yes") == {"deleted": pid}
    cli(ADMIN, pid, "projects", "show", expect=2)
    assert "404" in cli.err
    cli(annotator, pid, "queries", "next", expect=2)                           # 401
    assert cli(ADMIN, "projects", "list") == {"items": []}


def test_webhooks_health_metrics_and_openapi(server, capsys):
    cli = Cli(capsys)
    pid = cli(ADMIN, "projects", "create", "--name", "hooks", "--classes", "a,b",
              "--input-shape", "2")["id"]
    hook = cli(ADMIN, pid, "webhooks", "create", "http://127.0.0.1:9/hook")
    assert hook["id"] and hook.get("secret")
    assert [h["id"] for h in cli(ADMIN, pid, "webhooks", "list")["items"]] == [hook["id"]]
    assert cli(ADMIN, pid, "webhooks", "deliveries", hook["id"])["items"] is not None
    assert cli(ADMIN, pid, "webhooks", "delete", hook["id"]) == {"deleted": hook["id"]}
    assert main(["health"]) == 0 and json.loads(capsys.readouterr().out)["status"] == "ok"
    assert main(["metrics"]) == 0 and "# TYPE" in capsys.readouterr().out
    assert "paths" in cli(ADMIN, "openapi")


def test_every_documented_endpoint_has_a_client_method_and_a_command(server):
    """Each (method, path) of the OpenAPI document is called by some ``CincerClient``
    method, and every command group the client needs is on the CLI."""
    spec = CincerClient(server, ADMIN).openapi()
    source = inspect.getsource(client_module)
    called = set()
    for method, path in re.findall(r'"(GET|POST|PATCH|DELETE)", f?"([^"]+)"', source):
        path = re.sub(r"\{int\((\w+)\)\}", r"{\1}", path)
        called.add((method, path))
    # The f-string of overview_cell spans two lines.
    called.add(("GET", "/projects/{pid}/overview/cells/{label}/{prediction}"))
    missing = []
    for path, operations in spec["paths"].items():
        short = path.removeprefix("/api/v1")
        for method in operations:
            if method in ("get", "post", "patch", "delete", "put"):
                if (method.upper(), short) not in called:
                    missing.append(f"{method.upper()} {path}")
    assert not missing, missing
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for group in ("projects", "tokens", "examples", "queries", "models", "audits", "overview",
                  "webhooks", "health", "metrics", "openapi"):
        assert group in commands

"""``overview``, ``webhooks`` and the service commands against the fake service."""
import json

from clients.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and out.strip() else out), err


def test_overview(fake, capsys, tmp_path):
    service, _ = fake
    assert run(capsys, "1", "overview", "show")[1] == {"status": "computing"}
    assert run(capsys, "1", "overview", "compute")[0] == 0
    assert service.requests[-1][:2] == ("POST", "/api/v1/projects/1/overview")
    code, cell, _ = run(capsys, "1", "overview", "cell", 0, 1, "--min-score", 0.5)
    assert (cell["label"], cell["prediction"], cell["min_score"]) == (0, 1, 0.5)
    code, done, _ = run(capsys, "1", "overview", "action", "relabel", "--ids", "1,2",
                        "--label", 1, "--reason", "obvious")
    assert done["changed"] == 2
    assert service.requests[-1][2] == {"action": "relabel", "example_ids": [1, 2],
                                       "label": 1, "reason": "obvious"}
    code, _, err = run(capsys, "1", "overview", "action", "relabel", "--ids", "1")
    assert code == 2 and "--label" in err
    code, _, err = run(capsys, "1", "overview", "action", "confirm", "--ids", "1,a")
    assert code == 2 and "integers" in err
    assert main(["1", "overview", "action", "burn", "--ids", "1"]) == 2
    assert run(capsys, "1", "overview", "progress")[1]["items"][0]["model_version"] == 1
    png = tmp_path / "p.png"
    code, out, _ = run(capsys, "1", "overview", "progress", "--png", png)
    assert code == 0 and out["bytes"] == len(png.read_bytes()) > 0
    code, _, err = run(capsys, "1", "overview", "progress", "--png", tmp_path / "no" / "p.png")
    assert code == 2 and "cannot write" in err


def test_webhooks(fake, capsys):
    service, _ = fake
    code, hook, _ = run(capsys, "1", "webhooks", "create", "http://example.test/hook",
                        "--events", "query.answered")
    assert code == 0 and hook["secret"]
    assert service.requests[-1][2] == {"url": "http://example.test/hook",
                                       "events": ["query.answered"]}
    assert [h["id"] for h in run(capsys, "1", "webhooks", "list")[1]["items"]] == [1]
    code, page, _ = run(capsys, "1", "webhooks", "deliveries", 1, "--offset", 2)
    assert code == 0 and page["offset"] == 2
    assert run(capsys, "1", "webhooks", "delete", 1)[1] == {"deleted": 1}
    assert run(capsys, "1", "webhooks", "list")[1]["items"] == []
    assert main(["1", "webhooks", "create"]) == 2


def test_service_commands_need_no_project_or_token(fake, capsys, monkeypatch):
    monkeypatch.delenv("CINCER_TOKEN")
    assert run(capsys, "health")[1] == {"status": "ok"}
    code, _, err = run(capsys, "1", "projects", "show")
    assert code == 2 and "no token" in err
    monkeypatch.setenv("CINCER_TOKEN", "secret-token")
    assert run(capsys, "openapi")[1]["openapi"] == "3.0.3"

"""``python -m clients PROJECT-ID stats`` and ``wait-idle`` (exit 1 when still busy)."""
import json

from clients.cli import main


def test_stats_and_wait_idle(fake, capsys):
    assert main(["--project", "1", "stats"]) == 0
    assert "model_version" in json.loads(capsys.readouterr().out)
    assert main(["1", "wait-idle", "--timeout", "5"]) == 0
    assert "model_version" in json.loads(capsys.readouterr().out)


def test_wait_idle_times_out_with_exit_1(fake, capsys):
    service, _ = fake
    service.queries.append({"id": 1, "example": 1, "counterexample": 1, "status": "computing"})
    assert main(["1", "wait-idle", "--timeout", "0.2", "--poll", "0.05"]) == 1
    assert "still busy" in capsys.readouterr().err

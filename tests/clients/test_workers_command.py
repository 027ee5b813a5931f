"""``python -m clients workers`` and ``CincerClient.list_workers``: ``GET /api/v1/workers``."""
import json

from clients.cli import main


def test_workers_command_lists_what_the_service_lists(live, capsys):
    listed = live.list_workers()
    assert isinstance(listed, list)
    capsys.readouterr()
    assert main(["workers"]) == 0
    assert json.loads(capsys.readouterr().out) == {"items": listed}
    assert main(["workers", "--token", "not-a-token"]) == 2
    assert "401" in capsys.readouterr().err

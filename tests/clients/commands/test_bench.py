"""``python -m clients bench``: needs no project id; parts can be skipped; JSON output."""
import json
import os

from clients.cli import main


def test_bench_memory_only_needs_no_project(fake, capsys, tmp_path):
    _, url = fake
    assert main(["bench", "--json", "--skip", "ingest,latency,assistants,projects", "--pids-api",
                 str(os.getpid()), "--cluster-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1
    report = json.loads(out)
    assert report["url"] == url and report["health"] == {"status": "ok"}
    assert "ingest" not in report and "latency" not in report
    assert report["memory"]["api"][0]["pid"] == os.getpid()


def test_bench_without_json_is_indented(fake, capsys):
    assert main(["bench", "--skip", "ingest,latency,assistants,projects,memory"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) > 1 and set(json.loads(out)) == {"url", "health"}

"""``python -m clients``: input files, the simulated annotator, exit codes."""
import json
import subprocess
import sys

import numpy as np
import pytest

from clients.cli import main, split_project

from .fake_service import TOKEN, start_fake_service


@pytest.fixture
def fake(monkeypatch):
    server, service, url = start_fake_service()
    monkeypatch.setenv("CINCER_URL", url)
    monkeypatch.setenv("CINCER_TOKEN", TOKEN)
    monkeypatch.delenv("CINCER_PROJECT", raising=False)
    yield service, url
    server.shutdown()
    server.server_close()


def write_csv(path, rows, header="f0,f1,f2,f3,label,external_id"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return str(path)


def test_split_project():
    assert split_project(["--url", "u", "7", "stats"]) == (["--url", "u", "stats"], 7)
    assert split_project(["--quiet", "3", "ingest", "f.csv"]) == (["--quiet", "ingest",
                                                                  "f.csv"], 3)
    assert split_project(["bench", "--json"]) == (["bench", "--json"], None)
    assert split_project(["--token=t", "12", "export"]) == (["--token=t", "export"], 12)


def test_ingest_csv(fake, tmp_path, capsys):
    service, _ = fake
    path = write_csv(tmp_path / "d.csv", [[0, 1, 2, 3, 0, 10], [1, 1, 1, 1, "c", 11],
                                          [0, 0, 0, 0, 1, 12]])
    assert main(["--quiet", "1", "ingest", path, "--source", "s1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ingested"] == 3 and summary["statuses"] == {"accepted": 2, "suspicious": 1}
    stored = service.examples
    assert stored[0]["x"] == [[0.0, 1.0], [2.0, 3.0]]          # reshaped to input_shape
    assert [e["label"] for e in stored] == [0, 2, 1]           # class name "c" -> index 2
    assert [e["external_id"] for e in stored] == ["10", "11", "12"]
    assert {e["source"] for e in stored} == {"s1"}


def test_ingest_npz_without_ids_uses_row_index(fake, tmp_path, capsys):
    service, _ = fake
    path = tmp_path / "d.npz"
    np.savez(path, X=np.arange(20, dtype=np.float32).reshape(5, 4), y=np.array([0, 1, 2, 0, 1]))
    assert main(["1", "ingest", str(path), "--batch-size", "2", "--quiet"]) == 0
    assert [e["external_id"] for e in service.examples] == ["0", "1", "2", "3", "4"]
    assert sum(p.endswith("/examples") for _, p, _ in service.requests) == 3


@pytest.mark.parametrize("content, message", [
    ("f0,f1,f2,f3\n1,2,3,4\n", "no 'label' column"),
    ("f0,f1,f2,f3,label\n1,2,x,4,0\n", "not a number"),
    ("f0,f1,f2,label\n1,2,3,0\n", "expects input_shape [2, 2]"),
    ("f0,f1,f2,f3,label\n1,2,3,4,7\n", "outside [0, 3)"),
    ("f0,f1,f2,f3,label\n1,2,3,nan,0\n", "NaN or infinite"),
    ("f0,f1,f2,f3,label\n1,2,3,4\n", "fields, the header has"),
])
def test_bad_files_exit_2_and_send_nothing(fake, tmp_path, capsys, content, message):
    service, _ = fake
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["1", "ingest", str(path), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert service.examples == []


def test_bad_npz_and_missing_file(fake, tmp_path, capsys):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((3, 4)))
    assert main(["1", "ingest", str(path), "--quiet"]) == 2
    assert "missing array(s) ['y']" in capsys.readouterr().err
    assert main(["1", "ingest", str(tmp_path / "nope.csv"), "--quiet"]) == 2
    assert main(["1", "ingest", str(tmp_path / "d.txt"), "--quiet"]) == 2


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


def test_server_errors_and_unreachable_exit_1(fake, capsys):
    service, _ = fake
    service.fail_next = [500]
    assert main(["1", "stats"]) == 1
    assert "500 boom" in capsys.readouterr().err
    assert main(["--url", "http://127.0.0.1:9", "--request-timeout", "2", "1", "stats"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_annotate_answers_with_the_truth_until_idle(fake, tmp_path, capsys):
    service, _ = fake
    # external ids 0..4; the fake opens a query for every example ingested with label 2
    path = write_csv(tmp_path / "d.csv", [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 2, 1],
                                          [0, 0, 0, 0, 1, 2], [0, 0, 0, 0, 2, 3]])
    assert main(["1", "ingest", path, "--quiet"]) == 0
    truth = tmp_path / "truth.npy"
    np.save(truth, np.array([1, 0, 1, 2]))
    log = tmp_path / "answers.jsonl"
    capsys.readouterr()
    assert main(["1", "annotate", "--oracle", str(truth), "--idle-timeout", "0.2",
                 "--poll", "0.05", "--timeout", "20", "--log", str(log), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["answered"] == 2 and summary["stopped"] == "idle"
    assert summary["lost_leases"] == 0
    answers = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(a["example_id"], a["example_label"], a["counterexample_id"],
             a["counterexample_label"]) for a in answers] == [(2, 0, 1, 1), (4, 2, 1, 1)]
    assert summary["relabelled_examples"] == 1 and summary["relabelled_counterexamples"] == 1
    assert [e["label"] for e in service.examples] == [1, 0, 1, 2]


def test_annotate_max_queries_and_bad_oracle(fake, tmp_path, capsys):
    service, _ = fake
    path = write_csv(tmp_path / "d.csv", [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 2, 1],
                                          [0, 0, 0, 0, 2, 7]])
    assert main(["1", "ingest", path, "--quiet"]) == 0
    truth = tmp_path / "truth.npy"
    np.save(truth, np.array([0, 1, 2]))
    capsys.readouterr()
    assert main(["1", "annotate", "--oracle", str(truth), "--max-queries", "1", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["stopped"] == "max_queries"
    # the next query's example has external_id 7: outside the truth array
    assert main(["1", "annotate", "--oracle", str(truth), "--quiet"]) == 2
    assert "outside the truth array" in capsys.readouterr().err
    np.save(truth, np.array([0.5, 1.0]))
    assert main(["1", "annotate", "--oracle", str(truth), "--quiet"]) == 2
    assert "integer class indices" in capsys.readouterr().err


def test_export_stats_wait_idle(fake, tmp_path, capsys):
    path = write_csv(tmp_path / "d.csv", [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]])
    assert main(["1", "ingest", path, "--quiet"]) == 0
    out = tmp_path / "labels.csv"
    assert main(["1", "export", "--out", str(out)]) == 0
    assert out.read_text().splitlines() == ["id,label", "1,0", "2,1"]
    capsys.readouterr()
    assert main(["1", "export", "--format", "jsonl"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["--project", "1", "stats"]) == 0
    assert "model_version" in json.loads(capsys.readouterr().out)
    assert main(["1", "wait-idle", "--timeout", "5"]) == 0


def test_module_entry_point(fake):
    _, url = fake
    done = subprocess.run([sys.executable, "-m", "clients", "--url", url, "1", "stats"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model_version"] == 1
    done = subprocess.run([sys.executable, "-m", "clients", "--url", url, "1", "ingest"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage" in done.stderr


def test_annotate_leases_again_after_a_lost_lease(fake, tmp_path, capsys):
    service, _ = fake
    path = write_csv(tmp_path / "d.csv", [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 2, 1]])
    assert main(["1", "ingest", path, "--quiet"]) == 0
    truth = tmp_path / "truth.npy"
    np.save(truth, np.array([0, 1]))
    service.expire_leases = 1
    capsys.readouterr()
    assert main(["1", "annotate", "--oracle", str(truth), "--idle-timeout", "0.1",
                 "--poll", "0.05", "--timeout", "20", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["answered"], summary["lost_leases"]) == (1, 1)
    assert [e["label"] for e in service.examples] == [0, 1]

"""``python -m clients PROJECT-ID annotate``: answers from the oracle until idle or
``--max-queries``, lost leases, and bad oracles (exit 2)."""
import json

import numpy as np

from clients.cli import main

from ..inputs import write_csv


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


def test_annotate_refuses_bad_options_and_missing_oracles_before_any_request(fake, tmp_path,
                                                                             capsys):
    service, _ = fake
    truth = tmp_path / "truth.npy"
    np.save(truth, np.array([0, 1]))
    assert main(["1", "annotate", "--oracle", str(truth), "--max-queries", "-1",
                 "--quiet"]) == 2
    assert "--max-queries must not be negative" in capsys.readouterr().err
    assert main(["1", "annotate", "--oracle", str(tmp_path / "nope.npy"), "--quiet"]) == 2
    assert "cannot read the oracle" in capsys.readouterr().err
    assert service.requests == []


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

"""``annotate --oracle`` takes any external id: a JSON object or an example file as the
oracle, matched by id (the readers, the annotator's lookup, then the CLI)."""
import json

import numpy as np
import pytest

from clients.annotator import TruthLookupError, true_label
from clients.cli import main
from clients.errors import BadInput
from clients.readers import read_oracle

from .inputs import write_csv

PROJECT = {"id": 1, "classes": ["a", "b", "c"], "input_shape": [2, 2]}


def test_true_label_by_any_id_or_by_integer_index():
    truth = {"img-a": 2, "x/7": 0}
    assert true_label(truth, "img-a") == 2 and true_label(truth, "x/7") == 0
    with pytest.raises(TruthLookupError, match="'nope' is not in the oracle"):
        true_label(truth, "nope")
    with pytest.raises(TruthLookupError, match="None is not in the oracle"):
        true_label(truth, None)
    array = np.array([1, 0])
    assert true_label(array, "1") == 0
    with pytest.raises(TruthLookupError, match="give the oracle as a .json object"):
        true_label(array, "img-a")


def test_read_oracle_from_json_and_example_files(tmp_path):
    path = tmp_path / "truth.json"
    path.write_text(json.dumps({"img-a": "c", "img-b": 0}))
    assert read_oracle(str(path), PROJECT) == {"img-a": 2, "img-b": 0}
    csv = write_csv(tmp_path / "clean.csv", [[0, 0, 0, 0, "b", "img-a"],
                                             [0, 0, 0, 0, 2, "img-b"]])
    assert read_oracle(csv, PROJECT) == {"img-a": 1, "img-b": 2}
    jsonl = tmp_path / "clean.jsonl"
    jsonl.write_text('{"external_id": "k1", "x": [0, 0, 0, 0], "label": "a"}\n'
                     '{"external_id": "k2", "x": [0, 0, 0, 0], "label": 1}\n')
    assert read_oracle(str(jsonl), PROJECT) == {"k1": 0, "k2": 1}
    npz = tmp_path / "clean.npz"
    np.savez(npz, X=np.zeros((2, 4)), y=np.array([2, 1]), ids=np.array(["p", "q"]))
    assert read_oracle(str(npz), PROJECT) == {"p": 2, "q": 1}


@pytest.mark.parametrize("content, message", [
    ('["a"]', "expected a non-empty JSON object"),
    ("{}", "expected a non-empty JSON object"),
    ('{"k": "z"}', "external_id 'k': label 'z' is not one of the project's classes"),
    ('{"k": 5}', "label 5 is outside [0, 3)"),
    ("{nope", "is not valid JSON"),
])
def test_read_oracle_json_errors(tmp_path, content, message):
    path = tmp_path / "truth.json"
    path.write_text(content)
    with pytest.raises(BadInput, match="truth.json") as caught:
        read_oracle(str(path), PROJECT)
    assert message in str(caught.value)


def test_read_oracle_example_file_conflicts(tmp_path):
    csv = write_csv(tmp_path / "twice.csv", [[0, 0, 0, 0, 0, "k"], [0, 0, 0, 0, 1, "k"]])
    with pytest.raises(BadInput, match="external_id 'k' is given two different labels"):
        read_oracle(csv, PROJECT)
    with pytest.raises(BadInput, match="needs the project"):
        read_oracle(csv)


def test_annotate_with_string_ids_and_a_json_oracle(fake, tmp_path, capsys):
    service, _ = fake
    # string ids; the fake opens a query for every example ingested with label 2, whose
    # counter-example is the first example
    data = write_csv(tmp_path / "d.csv", [[0, 0, 0, 0, 0, "img-a"], [0, 0, 0, 0, 2, "img-b"],
                                          [0, 0, 0, 0, 1, "img-c"], [0, 0, 0, 0, 2, "img-d"]])
    assert main(["1", "ingest", data, "--quiet"]) == 0
    oracle = tmp_path / "truth.json"
    oracle.write_text(json.dumps({"img-a": "b", "img-b": "a", "img-c": 1, "img-d": "c"}))
    capsys.readouterr()
    assert main(["1", "annotate", "--oracle", str(oracle), "--idle-timeout", "0.2",
                 "--poll", "0.05", "--timeout", "20", "--quiet"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["answered"] == 2 and summary["stopped"] == "idle", err
    assert [e["label"] for e in service.examples] == [1, 0, 1, 2]
    assert summary["relabelled_examples"] == 1 and summary["relabelled_counterexamples"] == 1


def test_annotate_with_the_clean_example_file_as_oracle(fake, tmp_path, capsys):
    service, _ = fake
    noisy = write_csv(tmp_path / "noisy.csv", [[0, 0, 0, 0, 0, "u1"], [0, 0, 0, 0, 2, "u2"]])
    clean = write_csv(tmp_path / "clean.csv", [[0, 0, 0, 0, 1, "u1"], [0, 0, 0, 0, 0, "u2"]])
    assert main(["1", "ingest", noisy, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["1", "annotate", "--oracle", clean, "--idle-timeout", "0.2", "--poll", "0.05",
                 "--timeout", "20", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["answered"] == 1
    assert [e["label"] for e in service.examples] == [1, 0]


def test_annotate_reports_an_id_missing_from_the_oracle(fake, tmp_path, capsys):
    service, _ = fake
    data = write_csv(tmp_path / "d.csv", [[0, 0, 0, 0, 0, "img-a"], [0, 0, 0, 0, 2, "img-z"]])
    assert main(["1", "ingest", data, "--quiet"]) == 0
    oracle = tmp_path / "truth.json"
    oracle.write_text(json.dumps({"img-a": 0}))
    capsys.readouterr()
    assert main(["1", "annotate", "--oracle", str(oracle), "--quiet", "--timeout", "20"]) == 2
    assert "'img-z' is not in the oracle" in capsys.readouterr().err


def test_a_missing_oracle_file_is_refused_before_any_request(fake, tmp_path, capsys):
    service, _ = fake
    assert main(["1", "annotate", "--oracle", str(tmp_path / "nope.json"), "--quiet"]) == 2
    assert "cannot read the oracle" in capsys.readouterr().err
    assert service.requests == []

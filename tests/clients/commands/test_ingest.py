"""``python -m clients PROJECT-ID ingest``: CSV and NPZ files sent in batches; bad files
exit 2 and send nothing."""
import json

import numpy as np
import pytest

from clients.cli import main

from ..inputs import write_csv


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
    assert (summary["first_id"], summary["last_id"]) == (1, 3)


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


def test_a_refused_batch_reports_what_was_stored(fake, tmp_path, capsys):
    service, _ = fake
    path = write_csv(tmp_path / "d.csv", [[0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 2]])
    original, calls = service.ingest, []

    def refuse_second(body):                   # the fake's ingest, refusing the 2nd batch
        calls.append(body)
        if len(calls) == 2:
            return 422, {"error": {"code": "bad_input", "message": "no", "details": {}}}
        return original(body)

    service.ingest = refuse_second
    assert main(["1", "ingest", path, "--batch-size", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "422 bad_input" in err and "1 items of earlier batches were stored (ids 1..1)" in err

"""``clients.readers``: CSV, NPZ and oracle files into items and arrays; every bad file is a
``BadInput`` that names the file and the problem."""
import numpy as np
import pytest

from clients.errors import BadInput
from clients.readers import load_items, parse_label, read_csv, read_npz, read_oracle

from .inputs import write_csv

CLASSES = ["a", "b", "c"]
PROJECT = {"id": 1, "classes": CLASSES, "input_shape": [2, 2]}


def test_read_csv_columns_ids_and_sources(tmp_path):
    path = write_csv(tmp_path / "d.csv", [[0, 1, 2, 3, "b", "x1", "s"], [4, 5, 6, 7, 2, "", ""],
                                          ["", "", "", "", "", "", ""]],
                     header="f0, f1,f2,f3,label,external_id,source")
    X, y, ids, sources = read_csv(path, CLASSES)
    assert X.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]] and X.dtype == np.float64
    assert y.tolist() == [1, 2] and ids == ["x1", None] and sources == ["s", None]
    path = write_csv(tmp_path / "e.csv", [[1, 0], [2, 1]], header="label,f")
    X, y, ids, sources = read_csv(path, CLASSES)
    assert X.tolist() == [[0.0], [1.0]] and ids == ["0", "1"] and sources == [None, None]


def test_parse_label():
    assert parse_label(" 2 ", CLASSES, "here") == 2
    assert parse_label("a", CLASSES, "here") == 0
    with pytest.raises(BadInput, match="here: label 'z' is neither a class index"):
        parse_label("z", CLASSES, "here")
    with pytest.raises(BadInput, match=r"here: label -1 is outside \[0, 3\)"):
        parse_label("-1", CLASSES, "here")


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("label,external_id,source\n0,1,s\n", "no feature columns"),
    ("f0,label\n\n , \n", "no data rows"),
    ("f0,label\n1,z\n", ":2: label 'z' is neither"),
    ("f0,label\n1,0\n2\n", ":3: 1 fields, the header has 2"),
])
def test_read_csv_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(BadInput, match="bad.csv") as caught:
        read_csv(str(path), CLASSES)
    assert message in str(caught.value)


def test_read_csv_unreadable(tmp_path):
    with pytest.raises(BadInput, match="cannot read .*nope.csv"):
        read_csv(str(tmp_path / "nope.csv"), CLASSES)
    path = tmp_path / "latin.csv"
    path.write_bytes(b"f0,label\n\xff\xfe,0\n")
    with pytest.raises(BadInput, match="cannot read .*latin.csv"):
        read_csv(str(path), CLASSES)


def test_read_npz_ids_and_integral_float_labels(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((2, 2, 2), dtype=np.float32), y=np.array([2.0, 0.0]),
             ids=np.array([10, 11]))
    X, y, ids, sources = read_npz(str(path), CLASSES)
    assert X.shape == (2, 2, 2) and X.dtype == np.float64
    assert y.tolist() == [2, 0] and y.dtype == np.int64
    assert ids == ["10", "11"] and sources == [None, None]


@pytest.mark.parametrize("arrays, message", [
    ({"X": np.zeros((3, 4))}, "missing array(s) ['y']"),
    ({"X": np.zeros((3, 4)), "y": np.zeros(2, dtype=int)}, "expected one label per row"),
    ({"X": np.zeros((2, 2)), "y": np.zeros((2, 1), dtype=int)}, "expected one label per row"),
    ({"X": np.array([["a", "b"]]), "y": np.array([0])}, "X is not numeric"),
    ({"X": np.zeros((2, 2)), "y": np.array([0.5, 1.0])}, "integer class indices"),
    ({"X": np.zeros((2, 2)), "y": np.array(["a", "b"])}, "integer class indices"),
    ({"X": np.zeros((2, 2)), "y": np.array([0, 3])}, "y[1] = 3 is outside [0, 3)"),
    ({"X": np.zeros((2, 2)), "y": np.array([0, 1]), "ids": np.array([1])},
     "ids has 1 entries for 2 rows"),
])
def test_read_npz_errors(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(BadInput, match="bad.npz") as caught:
        read_npz(str(path), CLASSES)
    assert message in str(caught.value)


def test_read_npz_unreadable(tmp_path):
    with pytest.raises(BadInput, match="cannot read .*nope.npz as .npz"):
        read_npz(str(tmp_path / "nope.npz"), CLASSES)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not an archive at all")
    with pytest.raises(BadInput, match="cannot read .*garbage.npz as .npz"):
        read_npz(str(garbage), CLASSES)
    single = tmp_path / "single.npz"
    with open(single, "wb") as handle:                  # one .npy array under an .npz name
        np.save(handle, np.zeros(3))
    with pytest.raises(BadInput, match="holds one array, not arrays X and y"):
        read_npz(str(single), CLASSES)


def test_load_items_reshapes_and_tags(tmp_path):
    path = write_csv(tmp_path / "d.csv", [[0, 1, 2, 3, 0, 10, "s"], [4, 5, 6, 7, 1, 11, ""]],
                     header="f0,f1,f2,f3,label,external_id,source")
    items = load_items(path, PROJECT, None)
    assert items[0] == {"x": [[0.0, 1.0], [2.0, 3.0]], "label": 0, "external_id": "10",
                        "source": "s"}
    assert items[1]["source"] is None
    assert {i["source"] for i in load_items(path, PROJECT, "cli")} == {"cli"}


def test_load_items_errors(tmp_path):
    with pytest.raises(BadInput, match=r"d.tsv: expected a .csv, .npz, .jsonl or .txt file"):
        load_items(str(tmp_path / "d.tsv"), PROJECT, None)
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((2, 3)), y=np.array([0, 1]))
    with pytest.raises(BadInput, match=r"each row has 3 features; project 1 expects "
                                       r"input_shape \[2, 2\] \(4 values\)"):
        load_items(str(path), PROJECT, None)
    X = np.zeros((3, 4))
    X[2, 1] = np.inf
    np.savez(path, X=X, y=np.array([0, 1, 2]))
    with pytest.raises(BadInput, match="row 2 has NaN or infinite features"):
        load_items(str(path), PROJECT, None)


def test_read_oracle(tmp_path):
    path = tmp_path / "truth.npy"
    np.save(path, np.array([2, 0, 1]))
    assert read_oracle(str(path)).tolist() == [2, 0, 1]


@pytest.mark.parametrize("array, message", [
    (np.array([0.5, 1.0]), "got float64 of shape (2,)"),
    (np.zeros((2, 2), dtype=int), "of shape (2, 2)"),
])
def test_read_oracle_wrong_arrays(tmp_path, array, message):
    path = tmp_path / "truth.npy"
    np.save(path, array)
    with pytest.raises(BadInput, match="expected a 1-d array of integer class indices") as caught:
        read_oracle(str(path))
    assert message in str(caught.value)


def test_read_oracle_unreadable(tmp_path):
    with pytest.raises(BadInput, match="cannot read the oracle .*nope.npy"):
        read_oracle(str(tmp_path / "nope.npy"))
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"\x93NUMPY nonsense")
    with pytest.raises(BadInput, match="cannot read the oracle .*garbage.npy"):
        read_oracle(str(garbage))
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object))
    with pytest.raises(BadInput, match="cannot read the oracle .*objects.npy"):
        read_oracle(str(objects))
    archive = tmp_path / "truth.bin"                   # an .npz archive under another name
    np.savez(open(archive, "wb"), truth=np.array([0, 1]))
    with pytest.raises(BadInput, match="got an .npz archive"):
        read_oracle(str(archive))

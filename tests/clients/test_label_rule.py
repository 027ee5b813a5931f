"""Issue 19 §5, one label rule: a string is a class name, an integer a class index, in the
API, the client, the readers and the CLI. With classes ["1", "0"], label "1" is class "1"
(index 0) and label 1 is class "0"; text files never guess: digits are read as names when
the class names are digits, and the CLI says so in one line."""
import json

import pytest

from clients.cli import main
from clients.errors import BadInput
from clients.readers import json_label, label_note, load_items, parse_label, read_csv

DIGITS = ["1", "0"]
PROJECT = {"id": 7, "classes": DIGITS, "input_shape": [2]}


def test_text_labels_in_a_digit_named_project_are_class_names():
    assert parse_label("1", DIGITS, "here") == 0           # class "1", not index 1
    assert parse_label(" 0 ", DIGITS, "here") == 1
    with pytest.raises(BadInput, match="their names are digits, so labels are read as class"):
        parse_label("2", DIGITS, "here")
    # Elsewhere digits are an index, anything else a name.
    assert parse_label("1", ["a", "b"], "here") == 1
    assert parse_label("b", ["a", "b"], "here") == 1
    # Mixed names: one digit name is enough to read every text label as a name.
    assert parse_label("1", ["cat", "1"], "here") == 1
    with pytest.raises(BadInput, match="not one of the project's classes"):
        parse_label("0", ["cat", "1"], "here")


def test_json_labels_keep_their_type():
    assert json_label("1", DIGITS, "here") == "1"          # the name: class "1"
    assert json_label(1, DIGITS, "here") == 1              # the index: class "0"


def test_csv_and_txt_readers_read_digit_columns_as_names(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("f0,f1,label\n0,1,1\n2,3,0\n")
    _, y, _, _ = read_csv(str(path), DIGITS)
    assert y.tolist() == [0, 1]
    # An export carries label (index) and label_name: the names win, whatever the project.
    path.write_text("id,f0,f1,label,label_name\n1,0,1,1,0\n2,2,3,0,1\n")
    _, y, _, _ = read_csv(str(path), DIGITS)
    assert y.tolist() == [1, 0]
    text = tmp_path / "t.txt"
    text.write_text("1\thello\n0\tbye\n")
    items = load_items(str(text), {**PROJECT, "input_kind": "text"}, None)
    assert [i["label"] for i in items] == [0, 1]


def test_label_note():
    assert "class names are digits ('1', '0')" in label_note(PROJECT)
    assert "\n" not in label_note(PROJECT)
    assert label_note({"id": 1, "classes": ["a", "b"]}) is None


def test_api_and_client_apply_the_rule(live):
    client = live
    pid = client.create_project({"name": "digits", "classes": DIGITS, "input_shape": [2],
                                 "bootstrap_size": 50})["id"]
    client.ingest(pid, [{"x": [0, 0], "label": "1", "external_id": "a"},
                        {"x": [1, 1], "label": 1, "external_id": "b"}])
    stored = sorted(client.list_examples(pid)["items"], key=lambda e: e["id"])
    assert [(e["label"], e["label_name"]) for e in stored] == [(0, "1"), (1, "0")]


def test_cli_ingest_reads_digits_as_names_and_says_so(live, tmp_path, capsys):
    client = live
    pid = client.create_project({"name": "digits", "classes": DIGITS, "input_shape": [2],
                                 "bootstrap_size": 50})["id"]
    path = tmp_path / "d.csv"
    path.write_text("f0,f1,label,external_id\n0,1,1,a\n2,3,0,b\n")
    capsys.readouterr()
    assert main([str(pid), "ingest", str(path), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["ingested"] == 2
    notes = [line for line in err.splitlines() if "class names are digits" in line]
    assert len(notes) == 1 and "read as class names" in notes[0]
    stored = sorted(client.list_examples(pid)["items"], key=lambda e: e["id"])
    assert [e["label_name"] for e in stored] == ["1", "0"]
    # The overview's relabel takes a typed label by the same rule: "1" is class "1".
    assert main([str(pid), "overview", "action", "relabel", "--ids", str(stored[1]["id"]),
                 "--label", "1"]) == 0
    out, err = capsys.readouterr()
    assert "class names are digits" in err
    assert client.get_example(pid, stored[1]["id"])["label_name"] == "1"


def test_cli_ingest_in_other_projects_says_nothing(live, tmp_path, capsys):
    client = live
    pid = client.create_project({"name": "ab", "classes": ["a", "b"], "input_shape": [2],
                                 "bootstrap_size": 50})["id"]
    path = tmp_path / "d.csv"
    path.write_text("f0,f1,label\n0,1,1\n2,3,a\n")
    capsys.readouterr()
    assert main([str(pid), "ingest", str(path), "--quiet"]) == 0
    assert "digits" not in capsys.readouterr().err
    stored = sorted(client.list_examples(pid)["items"], key=lambda e: e["id"])
    assert [e["label_name"] for e in stored] == ["b", "a"]

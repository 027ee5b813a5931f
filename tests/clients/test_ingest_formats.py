"""``ingest`` reads JSON-lines and text files: the readers, then the CLI against the real
API (a JSONL file for a tabular project, a LABEL<TAB>TEXT file for a text project)."""
import json

import pytest

from clients.cli import main
from clients.errors import BadInput
from clients.readers import load_items, read_jsonl, read_text

CLASSES = ["a", "b", "c"]
TABULAR = {"id": 1, "classes": CLASSES, "input_shape": [2, 2], "input_kind": "tabular"}
TEXT = {"id": 2, "classes": ["greet", "bye"], "input_shape": [256], "input_kind": "text"}


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- readers -----------------------------------------------------------------------------------
def test_jsonl_items_like_the_rest_body(tmp_path):
    path = _write(tmp_path / "d.jsonl",
                  '{"external_id": "a1", "x": [1, 2, 3, 4], "label": "b", "source": "s"}\n'
                  "\n"
                  '{"x": [[5, 6], [7, 8]], "label": 2}\n'
                  '{"external_id": "17", "x": [0, 0, 0, 0], "label": 0}\n')
    items = read_jsonl(path, TABULAR)
    assert items[0] == {"external_id": "a1", "x": [[1.0, 2.0], [3.0, 4.0]], "label": "b",
                        "source": "s"}
    assert items[1] == {"external_id": "1", "x": [[5.0, 6.0], [7.0, 8.0]], "label": 2,
                        "source": None}                        # row index as the id
    assert items[2]["external_id"] == "17"
    assert {i["source"] for i in load_items(path, TABULAR, "cli")} == {"cli"}


def test_jsonl_text_items_keep_text_and_embedding(tmp_path):
    path = _write(tmp_path / "t.jsonl", json.dumps({"text": "hi there", "label": "greet",
                                                    "embedding": [0.5, 0.25]}) + "\n")
    assert load_items(path, TEXT, None) == [{"text": "hi there", "label": "greet",
                                             "embedding": [0.5, 0.25], "external_id": "0",
                                             "source": None}]


@pytest.mark.parametrize("line, message", [
    ("[1, 2]", "expected a JSON object, got list"),
    ("{not json", "not valid JSON"),
    ('{"x": [1, 2, 3, 4]}', "no 'label'"),
    ('{"label": 0}', "give exactly one input of x, image, text (got none)"),
    ('{"label": 0, "x": [1, 2, 3, 4], "text": "t"}', "give exactly one input"),
    ('{"label": 0, "x": [1, 2, 3, 4], "colour": 1}', "unknown key(s) ['colour']"),
    ('{"label": "z", "x": [1, 2, 3, 4]}', "label 'z' is not one of the project's classes"),
    ('{"label": "1", "x": [1, 2, 3, 4]}', "label '1' is not one of the project's classes"),
    ('{"label": 3, "x": [1, 2, 3, 4]}', "label 3 is outside [0, 3)"),
    ('{"label": true, "x": [1, 2, 3, 4]}', "label must be a class name"),
    ('{"label": 0, "x": [1, 2, 3]}', "x has 3 values; project 1 expects input_shape [2, 2]"),
    ('{"label": 0, "x": [1, "a", 3, 4]}', "x must hold numbers"),
    ('{"label": 0, "x": [1, 2, 3, 4], "external_id": 1.5}', "external_id must be a string"),
    ('{"label": 0, "x": [1, 2, 3, 4], "external_id": 17}',
     'external_id must be a string (write "17"), got 17'),
])
def test_jsonl_errors_name_the_line(tmp_path, line, message):
    path = _write(tmp_path / "bad.jsonl", '{"x": [1, 2, 3, 4], "label": 0}\n' + line + "\n")
    with pytest.raises(BadInput) as caught:
        load_items(path, TABULAR, None)
    text = str(caught.value)
    assert "bad.jsonl:2: " in text and message in text, text


def test_text_file_label_tab_text(tmp_path):
    path = _write(tmp_path / "t.txt", "greet\thello there\r\n\n1\tsee you\tlater\nbye\t  so long\n")
    items = read_text(path, TEXT)
    assert [i["text"] for i in items] == ["hello there", "see you\tlater", "  so long"]
    assert [i["label"] for i in items] == [0, 1, 1]         # class name or class index
    assert [i["external_id"] for i in items] == ["0", "1", "2"]
    assert load_items(path, TEXT, "s")[0]["source"] == "s"


@pytest.mark.parametrize("content, message", [
    ("greet hello\n", "t.txt:1: expected LABEL<TAB>TEXT, found no tab"),
    ("greet\thi\nwave\thello\n", "t.txt:2: label 'wave' is neither a class index"),
    ("greet\t   \n", "t.txt:1: the text after the tab is empty"),
    ("\n\n", "no examples"),
])
def test_text_file_errors(tmp_path, content, message):
    path = _write(tmp_path / "t.txt", content)
    with pytest.raises(BadInput, match="t.txt") as caught:
        load_items(path, TEXT, None)
    assert message in str(caught.value)


def test_text_file_for_a_project_without_texts(tmp_path):
    path = _write(tmp_path / "t.txt", "a\thello\n")
    with pytest.raises(BadInput, match="holds texts, but project 1 takes tabular inputs"):
        load_items(path, TABULAR, None)
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"greet\t\xff\xfe\n")
    with pytest.raises(BadInput, match="cannot read .*latin.txt"):
        load_items(str(latin), TEXT, None)


# -- the CLI against the real API ------------------------------------------------------------
def _ingest(path, pid, capsys):
    capsys.readouterr()
    status = main([str(pid), "ingest", str(path), "--quiet"])
    out, err = capsys.readouterr()
    assert status == 0, err
    return json.loads(out)


def test_cli_ingests_a_jsonl_file(live, tmp_path, capsys):
    server = live
    pid = server.create_project({"name": "rows", "classes": CLASSES, "input_shape": [4],
                                 "bootstrap_size": 10})["id"]
    lines = [{"external_id": f"r{i}", "x": [i, i + 1, i + 2, i + 3],
              "label": CLASSES[i % 3] if i % 2 else i % 3} for i in range(6)]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary = _ingest(path, pid, capsys)
    assert summary["ingested"] == 6
    stored = sorted(server.list_examples(pid, limit=50)["items"], key=lambda e: e["id"])
    assert [e["external_id"] for e in stored] == [f"r{i}" for i in range(6)]
    assert [e["label"] for e in stored] == [i % 3 for i in range(6)]
    assert stored[2]["x"] == [2.0, 3.0, 4.0, 5.0]


def test_cli_ingests_a_text_file(live, tmp_path, capsys):
    server = live
    pid = server.create_project({"name": "talk", "classes": ["greet", "bye"],
                                 "input_kind": "text", "input_shape": [64],
                                 "model": {"kind": "lr"}, "bootstrap_size": 10})["id"]
    path = tmp_path / "talk.txt"
    path.write_text("greet\thello there\nbye\tsee you later\n1\tso long\n", encoding="utf-8")
    summary = _ingest(path, pid, capsys)
    assert summary["ingested"] == 3
    stored = sorted(server.list_examples(pid, limit=50)["items"], key=lambda e: e["id"])
    assert [e["text"] for e in stored] == ["hello there", "see you later", "so long"]
    assert [e["label_name"] for e in stored] == ["greet", "bye", "bye"]
    assert [e["external_id"] for e in stored] == ["0", "1", "2"]

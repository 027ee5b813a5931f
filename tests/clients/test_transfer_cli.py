"""``python -m clients PID export`` then ``import FILE`` into a new project, against the real
API: .jsonl (with the history) and .csv exports of tabular, image and text projects read back
as the same labels, statuses and inputs (issue 19 §2)."""
import json

import pytest

from clients.cli import main
from clients.errors import BadInput
from clients.readers import read_export

TABULAR = {"classes": ["1", "0"], "input_shape": [3], "feature_names": ["area", "b", "c"],
           "bootstrap_size": 50}
IMAGE = {"classes": ["dark", "light"], "input_kind": "image", "input_shape": [2, 2],
         "bootstrap_size": 50}
TEXT = {"classes": ["greet", "bye"], "input_kind": "text", "input_shape": [16],
        "model": {"kind": "lr"}, "bootstrap_size": 50}


def cli(capsys, *argv):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def rows(client, pid):
    keys = ("external_id", "source", "label", "label_name", "original_label", "status",
            "confirmed", "x", "text")
    return sorted(({k: e[k] for k in keys} for e in
                   client.list_examples(pid, limit=100)["items"]),
                  key=lambda e: e["external_id"])


@pytest.mark.parametrize("spec, items", [
    (TABULAR, [{"x": [1e6, 0.1, -3], "label": "1"}, {"x": [2.5, 0, 1], "label": 1}]),
    (IMAGE, [{"x": [[0, 0.1875], [1, 0.5]], "label": "dark"},
             {"x": [[0.3, 0.3], [0.9, 1]], "label": 1}]),
    (TEXT, [{"text": "hello, there", "label": "greet"},
            {"text": "so \"long\"", "label": 1, "embedding": [0.25] * 16}]),
], ids=["tabular", "image", "text"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_then_import_into_a_new_project(live, tmp_path, capsys, spec, items, fmt):
    client = live
    pid = client.create_project({"name": "source", **spec})["id"]
    client.ingest(pid, [{**item, "external_id": f"e{i}", "source": "s"}
                        for i, item in enumerate(items)])
    first = client.list_examples(pid)["items"][0]["id"]
    client.overview_action(pid, "relabel", [first], label=1, reason="wrong")
    path = tmp_path / f"export.{fmt}"
    cli(capsys, pid, "export", "--format", fmt, "--out", path)
    target = client.create_project({"name": "copy", **spec})["id"]
    summary = json.loads(cli(capsys, target, "import", path, "--quiet"))
    assert summary["imported"] == len(items)
    assert summary["events"] == 3                  # two ingests and the relabel
    assert rows(client, target) == rows(client, pid)
    relabelled = client.list_examples(target)["items"][0]
    history = client.get_example(target, relabelled["id"])["history"]
    assert [(h["old_label"], h["new_label"], h["why"]) for h in history] == \
        [(None, relabelled["original_label"], "import"),
         (relabelled["original_label"], 1, "import")]


def test_read_export_errors(tmp_path):
    project = {"id": 1, "classes": ["a", "b"], "input_shape": [2]}
    path = tmp_path / "e.txt"
    path.write_text("x")
    with pytest.raises(BadInput, match="a .jsonl or .csv file"):
        read_export(str(path), project)
    path = tmp_path / "e.csv"
    path.write_text("id,label,x0,x1\n1,a,1,nope\n")
    with pytest.raises(BadInput, match=r"e.csv:2: a feature is not a number"):
        read_export(str(path), project)
    path.write_text("id,label,x0,x1\n1,1,1,2\n")         # no label_name: the one rule
    assert read_export(str(path), project) == [{"label": 1, "x": [1.0, 2.0]}]

"""``python -m clients PROJECT-ID export``: CSV to a file, JSON lines to stdout."""
from clients.cli import main

from ..inputs import write_csv


def test_export(fake, tmp_path, capsys):
    path = write_csv(tmp_path / "d.csv", [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]])
    assert main(["1", "ingest", path, "--quiet"]) == 0
    out = tmp_path / "labels.csv"
    assert main(["1", "export", "--out", str(out)]) == 0
    assert out.read_text().splitlines() == ["id,label", "1,0", "2,1"]
    capsys.readouterr()
    assert main(["1", "export", "--format", "jsonl"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["1", "export", "--format", "xml"]) == 2             # usage error

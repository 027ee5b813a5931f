"""The cleaning curve from the client (``cleaning_curve``, ``cleaning_curve_png``) and the
CLI (``curve``, ``curve --table``, ``curve --png``), against the real API."""
import json

import numpy as np

from cincer_service.datasets import inject_noise, load_dataset
from clients.cli import main

BOOTSTRAP, STREAM, N_GOLD = 60, 120, 30


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def test_the_curve_from_the_client_and_the_cli(live, capsys, tmp_path):
    data = load_dataset("breast", seed=0)
    noisy, _ = inject_noise(data.y_train, 2, 0.2, seed=0)
    pid = live.create_project({"name": "curve", "classes": ["malignant", "benign"],
                               "input_shape": [30], "bootstrap_size": BOOTSTRAP,
                               "model": {"kind": "lr", "max_epochs": 60},
                               "retrain": {"every_n_answers": 10}})["id"]
    empty = live.cleaning_curve(pid)
    assert empty == {"evaluation": None, "points": []}
    assert "no model version yet" in _run(capsys, pid, "curve", "--table")
    live.ingest(pid, [{"external_id": f"gold-{i}", "x": np.asarray(data.X_test[i]).tolist(),
                       "label": int(data.y_test[i]), "split": "evaluation"}
                      for i in range(N_GOLD)])
    live.ingest(pid, [{"external_id": str(i), "x": np.asarray(data.X_train[i]).tolist(),
                       "label": int(noisy[i])} for i in range(BOOTSTRAP + STREAM)])
    while (q := live.next_query(pid)) is not None:
        ce = q["counterexample"]
        live.answer_query(pid, q["id"], int(data.y_train[int(q["example"]["external_id"])]),
                          None if ce is None else int(data.y_train[int(ce["external_id"])]))
    curve = live.cleaning_curve(pid)
    points = curve["points"]
    assert len(points) >= 2 and all(p["status"] == "ok" and p["n"] == N_GOLD for p in points)
    assert curve["evaluation"]["version"] == points[-1]["version"]
    assert points[0]["answers"] == 0 and points[-1]["answers"] > 0

    assert json.loads(_run(capsys, pid, "curve")) == curve
    table = _run(capsys, pid, "curve", "--table").splitlines()
    assert table[0].split() == ["version", "answers", "n", "accuracy", "macro-F1", "log",
                                "loss", "ECE"]
    assert len(table) == 1 + len(points)
    last = table[-1].split()
    assert last[:3] == [str(points[-1]["version"]), str(points[-1]["answers"]), str(N_GOLD)]
    assert last[3] == f"{points[-1]['accuracy']:.3f}"
    png = tmp_path / "curve.png"
    written = json.loads(_run(capsys, pid, "curve", "--png", png))
    assert written["bytes"] == png.stat().st_size > 0
    assert png.read_bytes().startswith(b"\x89PNG") and live.cleaning_curve_png(pid) \
        .startswith(b"\x89PNG")

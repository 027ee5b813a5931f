"""reports: stats, export, metrics."""
import csv
import io
import json

import pytest

from cincer_service.service import NotFound, examples, reports
from tests.support.service import BOOTSTRAP, annotator, answer_all, items, new_project


def test_stats_export_and_metrics_follow_the_answers(ctx, stream):
    data, noisy, _ = stream
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 100))
    empty = reports.stats(ctx, pid)
    assert empty["cleaned"] == 0 and empty["relabelled"] == 0
    assert sum(empty["examples"].values()) == BOOTSTRAP + 100
    answer_all(ctx, pid, data.y_train, annotator(ctx, pid))
    stats = reports.stats(ctx, pid)

    rows = [json.loads(line) for line in reports.export(ctx, pid, "jsonl")[0].splitlines()]
    assert len(rows) == BOOTSTRAP + 100
    changed = sum(r["label"] != r["original_label"] for r in rows)
    assert stats["cleaned"] == changed > 0
    wrong_before = sum(r["original_label"] != data.y_train[int(r["external_id"])] for r in rows)
    wrong_after = sum(r["label"] != data.y_train[int(r["external_id"])] for r in rows)
    assert wrong_after < wrong_before

    text, mimetype = reports.export(ctx, pid, "csv")
    assert mimetype == "text/csv"
    table = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["label"]) for r in table] == [r["label"] for r in rows]

    metrics = reports.metrics(ctx)
    assert sum(n for p, _, n in metrics["examples"] if p == pid) == BOOTSTRAP + 100
    assert dict(metrics["model_versions"])[pid] == stats["model_version"]
    assert metrics["jobs"]["retrain"] >= 1
    with pytest.raises(NotFound):
        reports.stats(ctx, pid + 1)

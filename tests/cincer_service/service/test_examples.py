"""examples: all-or-nothing ingest, bootstrap, pages, history."""
import pytest

from cincer_service.service import BadInput, NotFound, examples
from tests.support.service import BOOTSTRAP, items, make_context, new_project


def test_bad_batches_store_nothing(ctx, stream):
    pid = new_project(ctx)
    good = items(stream, 0, 3)
    bad_cases = {
        "wrong shape": [*good, {"x": [0.1] * 29, "label": 0}],
        "nan": [*good, {"x": [float("nan")] * 30, "label": 0}],
        "inf": [*good, {"x": [float("inf")] * 30, "label": 0}],
        "unknown label": [*good, {"x": [0.1] * 30, "label": 2}],
        "bool label": [*good, {"x": [0.1] * 30, "label": True}],
        "ragged": [*good, {"x": [[0.1], [0.1, 0.2]], "label": 0}],
        "not numbers": [*good, {"x": ["a"] * 30, "label": 0}],
        "not an object": [*good, 7],
        "empty": [],
        "oversized": items(stream, 0, 5) * 300,
    }
    for case, batch in bad_cases.items():
        with pytest.raises(BadInput) as info:
            examples.ingest(ctx, pid, batch)
        assert info.value.details, case
    assert examples.list_examples(ctx, pid)["total"] == 0
    with pytest.raises(NotFound):
        examples.ingest(ctx, pid + 1, good)


def test_bootstrap_then_pending(tmp_path, stream):
    ctx = make_context(tmp_path, dispatcher=None)        # nothing runs: statuses stay
    pid = new_project(ctx)
    first = examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP - 10))
    rest = examples.ingest(ctx, pid, items(stream, BOOTSTRAP - 10, BOOTSTRAP + 10))
    statuses = [r["status"] for r in first + rest]
    assert statuses == ["accepted"] * BOOTSTRAP + ["pending"] * 10


def test_pages_and_history(tmp_path, stream):
    ctx = make_context(tmp_path, dispatcher=None)
    pid = new_project(ctx)
    ids = [r["id"] for r in examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 5))]
    page = examples.list_examples(ctx, pid, offset=10, limit=5)
    assert page["total"] == BOOTSTRAP + 5 and [e["id"] for e in page["items"]] == ids[10:15]
    pending = examples.list_examples(ctx, pid, status="pending")
    assert [e["id"] for e in pending["items"]] == ids[BOOTSTRAP:]
    one = examples.get_example(ctx, pid, ids[0])
    assert one["history"][0]["why"] == "ingest" and one["history"][0]["old_label"] is None
    assert len(one["x"]) == 30 and one["label"] == one["original_label"]
    with pytest.raises(NotFound):
        examples.get_example(ctx, pid, ids[-1] + 1)
    other = new_project(ctx, name="other")
    with pytest.raises(NotFound):                        # an example of another project
        examples.get_example(ctx, other, ids[0])

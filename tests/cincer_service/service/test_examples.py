"""examples: all-or-nothing idempotent ingest, bootstrap, pages, history, class names."""
import threading

import pytest

from cincer_service.service import BadInput, Conflict, NotFound, examples
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


def test_replayed_ingest_stores_nothing_twice(tmp_path, stream, database_url):
    ctx = make_context(tmp_path, dispatcher=None, database_url=database_url)
    pid = new_project(ctx)
    batch = items(stream, 0, 20)
    first = examples.ingest(ctx, pid, batch)
    again = examples.ingest(ctx, pid, batch)             # the client's retry
    assert [r["id"] for r in again] == [r["id"] for r in first]
    assert {r["outcome"] for r in first} == {"created"}
    assert {r["outcome"] for r in again} == {"replayed"}
    assert examples.list_examples(ctx, pid)["total"] == 20
    history = examples.get_example(ctx, pid, first[0]["id"])["history"]
    assert [h["why"] for h in history] == ["ingest"]

    # Same input, another label (by class name): a label change in the history.
    changed = dict(batch[0], label="benign" if batch[0]["label"] == 0 else "malignant")
    update = examples.ingest(ctx, pid, [changed])
    assert update[0]["outcome"] == "updated" and update[0]["id"] == first[0]["id"]
    history = examples.get_example(ctx, pid, first[0]["id"])["history"]
    assert [h["why"] for h in history] == ["ingest", "ingest_update"]
    assert history[1]["new_label"] == 1 - batch[0]["label"]

    # Another input under a stored external id is refused whole.
    clash = [items(stream, 30, 31)[0], dict(items(stream, 40, 41)[0], external_id="1")]
    with pytest.raises(Conflict):
        examples.ingest(ctx, pid, clash)
    assert examples.list_examples(ctx, pid)["total"] == 20
    with pytest.raises(BadInput):                        # the same id twice in one batch
        examples.ingest(ctx, pid, [batch[0], batch[0]])


def test_concurrent_replays_store_each_example_once(tmp_path, stream, database_url):
    ctx = make_context(tmp_path, dispatcher=None, database_url=database_url)
    pid = new_project(ctx)
    batch = items(stream, 0, 50)
    barrier, results = threading.Barrier(4), []

    def send():
        barrier.wait()
        results.append(examples.ingest(ctx, pid, batch))
    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert len({tuple(r["id"] for r in result) for result in results}) == 1
    assert examples.list_examples(ctx, pid)["total"] == 50


def test_labels_by_class_name(tmp_path, stream):
    ctx = make_context(tmp_path, dispatcher=None)
    pid = new_project(ctx)
    item = items(stream, 0, 1)[0]
    stored = examples.ingest(ctx, pid, [dict(item, label="benign")])[0]
    example = examples.get_example(ctx, pid, stored["id"])
    assert example["label"] == 1 and example["label_name"] == "benign"
    assert example["history"][0]["new_label_name"] == "benign"
    with pytest.raises(BadInput) as info:
        examples.ingest(ctx, pid, [dict(items(stream, 1, 2)[0], label="cat")])
    assert "benign" in info.value.details["items.0.label"][0]

"""transfer: the export carries class names, inputs, status, the last change and (JSON
lines) the history; importing it into a new project reproduces labels, statuses, inputs and
history for tabular, image and text projects (issue 19 §2)."""
import base64
import csv
import io
import json

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from cincer_service.datasets import load_dataset
from cincer_service.service import (
    BadInput,
    Conflict,
    Forbidden,
    access,
    annotators,
    examples,
    projects,
    queries,
    transfer,
)
from cincer_service.service.store import Example, LabelEvent, Project, Query
from cincer_service.spec import ProjectSpec
from tests.support.service import (
    BOOTSTRAP,
    annotator,
    answer_all,
    items,
    new_project,
    true_answer,
)


def jsonl(ctx, pid) -> list[dict]:
    text, mimetype = transfer.export(ctx, pid, "jsonl")
    assert mimetype == "application/x-ndjson"
    return [json.loads(line) for line in text.splitlines()]


def stored(ctx, pid) -> dict[str, tuple]:
    """external_id -> (label, original, status, confirmed, x bytes, raw, source, events)."""
    with ctx.store.session() as s:
        rows = s.scalars(select(Example).where(Example.project_id == pid))
        out = {}
        for e in rows:
            events = [(ev.old_label, ev.new_label, ev.actor, ev.at) for ev in s.scalars(
                select(LabelEvent).where(LabelEvent.example_id == e.id)
                .order_by(LabelEvent.id))]
            out[e.external_id] = (e.label, e.original_label, e.status, e.confirmed, e.x, e.raw,
                                  e.source, events)
        return out


def same_examples(ctx, source_pid, target_pid):
    before, after = stored(ctx, source_pid), stored(ctx, target_pid)
    assert before.keys() == after.keys()
    for key, row in before.items():
        assert after[key][:7] == row[:7], key
        assert [e[:3] for e in after[key][7]] == [e[:3] for e in row[7]], key
        assert [e[3] for e in after[key][7]] == [e[3] for e in row[7]], key


def test_tabular_round_trip_keeps_labels_statuses_inputs_and_history(ctx, stream):
    data, _, _ = stream
    pid = new_project(ctx)
    examples.ingest(ctx, pid, [{**item, "source": "s"} for item in
                               items(stream, 0, BOOTSTRAP + 60)])
    answered = answer_all(ctx, pid, data.y_train, annotator(ctx, pid, "alice"))
    assert answered
    records = jsonl(ctx, pid)
    first = records[0]
    assert first["label_name"] == ["malignant", "benign"][first["label"]]
    assert first["source"] == "s" and len(first["x"]) == 30 and first["history"]
    relabelled = [r for r in records if r["label"] != r["original_label"]]
    assert relabelled and all(r["changed_by"] == "alice" for r in relabelled)
    assert all(r["changed_at"] == r["history"][-1]["at"] for r in records)
    assert {r["status"] for r in records} >= {"accepted", "reviewed"}

    target = new_project(ctx, name="copy")
    result = transfer.import_examples(ctx, target, records, actor="admin")
    assert result["imported"] == len(records)
    assert result["events"] == sum(len(r["history"]) for r in records)
    same_examples(ctx, pid, target)
    # Nothing was screened again: the only stream queries in the copy are the answered ones
    # it carried (the first model's bootstrap audit may still ask about a few), and its
    # export matches the source's.
    carried = [q for r in records for q in r["queries"]]
    assert len(carried) == len(answered) and result["answers"] == len(answered)
    copied_queries = [q for q in queries.list_queries(ctx, target, limit=500)["items"]
                      if q["origin"] == "stream"]
    assert all(q["status"] == "answered" for q in copied_queries)
    assert len(copied_queries) == sum(q["origin"] == "stream" for q in carried)
    copied = {r["external_id"]: r for r in jsonl(ctx, target)}
    for r in records:
        c = copied[r["external_id"]]
        assert {k: c[k] for k in ("label", "label_name", "original_label", "status",
                                  "confirmed", "changed_by", "changed_at", "created_at",
                                  "x")} == \
            {k: r[k] for k in ("label", "label_name", "original_label", "status",
                               "confirmed", "changed_by", "changed_at", "created_at", "x")}
        assert [e["why"] for e in c["history"]] == ["import"] * len(r["history"])
        assert c["history"][-1]["reason"].startswith(r["history"][-1]["why"])
    # A second import of the same records is refused: their external ids are taken.
    with pytest.raises(Conflict, match="already in the project"):
        transfer.import_examples(ctx, target, records[:3])

    # CSV: a column per feature (named by the project), class names beside indices.
    text, mimetype = transfer.export(ctx, pid, "csv")
    table = list(csv.DictReader(io.StringIO(text)))
    assert mimetype == "text/csv" and len(table) == len(records)
    assert list(table[0])[:12] == list(transfer.EXPORT_COLUMNS)
    assert [r["label_name"] for r in table] == [r["label_name"] for r in records]
    assert [r["changed_by"] for r in table] == [r["changed_by"] for r in records]
    assert np.float32(table[0]["x29"]) == np.float32(records[0]["x"][29])


def test_pending_records_are_screened_and_a_first_model_is_trained(ctx, stream):
    data, _, _ = stream
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 5))
    records = jsonl(ctx, pid)
    for r in records[BOOTSTRAP:]:
        r["status"] = "pending"
    target = new_project(ctx, name="copy")
    transfer.import_examples(ctx, target, records)
    after = {r["external_id"]: r["status"] for r in jsonl(ctx, target)}
    assert all(after[r["external_id"]] == "accepted" for r in records[:BOOTSTRAP])
    assert all(after[r["external_id"]] in ("accepted", "suspicious")
               for r in records[BOOTSTRAP:])
    assert projects.get_project(ctx, target)["model_version"] == 1


def test_image_round_trip_exact_values_and_a_png(ctx):
    digits = load_dataset("digits", seed=0)
    classes = [str(c) for c in range(10)]
    spec = dict(classes=classes, input_shape=[8, 8], input_kind="image",
                model={"kind": "lr"}, bootstrap_size=1000)
    pid = projects.create_project(ctx, ProjectSpec.build(name="digits", **spec))["id"]
    images = digits.X_train[:20].reshape(-1, 8, 8)
    examples.ingest(ctx, pid, [{"external_id": str(i), "x": images[i].tolist(),
                                "label": str(int(digits.y_train[i]))} for i in range(20)])
    records = jsonl(ctx, pid)
    png = Image.open(io.BytesIO(base64.b64decode(records[3]["image"])))
    assert png.size == (8, 8) and png.mode == "L"
    assert np.abs(np.asarray(png) / 255.0 - images[3]).max() <= 0.5 / 255 + 1e-6
    assert records[3]["label_name"] == str(int(digits.y_train[3]))
    target = projects.create_project(ctx, ProjectSpec.build(name="copy", **spec))["id"]
    transfer.import_examples(ctx, target, records)
    same_examples(ctx, pid, target)
    # The image alone (no x) is read as the PNG says.
    other = projects.create_project(ctx, ProjectSpec.build(name="png", **spec))["id"]
    transfer.import_examples(ctx, other, [{k: v for k, v in r.items() if k != "x"}
                                          for r in records[:2]])
    x = [r["x"] for r in jsonl(ctx, other)]
    assert np.allclose(x, images[:2], atol=0.5 / 255 + 1e-6)
    table = list(csv.DictReader(io.StringIO(transfer.export(ctx, pid, "csv")[0])))
    assert table[3]["image"] == records[3]["image"] and "x63" in table[3]


def test_text_round_trip_with_hashed_and_own_embeddings(ctx):
    spec = dict(classes=["greet", "bye"], input_kind="text", input_shape=[16],
                model={"kind": "lr"}, bootstrap_size=100)
    pid = projects.create_project(ctx, ProjectSpec.build(name="talk", **spec))["id"]
    examples.ingest(ctx, pid, [
        {"external_id": "a", "text": "hello there", "label": "greet"},
        {"external_id": "b", "text": "see you", "label": 1, "source": "chat"},
        {"external_id": "c", "text": "mine", "label": "bye", "embedding": [0.5] * 16}])
    records = jsonl(ctx, pid)
    assert [r["text"] for r in records] == ["hello there", "see you", "mine"]
    assert "embedding" not in records[0] and records[2]["embedding"] == [0.5] * 16
    assert "x" not in records[0]
    target = projects.create_project(ctx, ProjectSpec.build(name="copy", **spec))["id"]
    transfer.import_examples(ctx, target, records)
    same_examples(ctx, pid, target)
    table = list(csv.DictReader(io.StringIO(transfer.export(ctx, pid, "csv")[0])))
    assert table[1]["text"] == "see you" and table[1]["label_name"] == "bye"
    assert table[0]["embedding"] == "" and json.loads(table[2]["embedding"]) == [0.5] * 16


def test_import_without_history_implies_it_and_names_bad_fields(ctx):
    pid = new_project(ctx, name="rows", input_shape=[2])
    record = {"external_id": "r", "x": [1, 2], "label": 1, "original_label": 0,
              "status": "reviewed", "confirmed": True, "changed_by": "bob",
              "changed_at": "2024-05-01T12:00:00+00:00",
              "created_at": "2024-04-01T12:00:00+00:00"}
    transfer.import_examples(ctx, pid, [record], actor="admin")
    [row] = jsonl(ctx, pid)
    assert (row["label_name"], row["original_label_name"], row["status"],
            row["confirmed"]) == ("benign", "malignant", "reviewed", True)
    assert [(e["old_label"], e["new_label"], e["actor"]) for e in row["history"]] == \
        [(None, 0, "admin"), (0, 1, "bob")]
    assert row["changed_at"].startswith("2024-05-01T12:00:00")
    # label_name wins over label: a string is a class name.
    transfer.import_examples(ctx, pid, [{**record, "external_id": "n", "label": 0,
                                         "label_name": "benign"}])
    assert jsonl(ctx, pid)[1]["label"] == 1
    with pytest.raises(BadInput) as caught:
        transfer.import_examples(ctx, pid, [
            {**record, "external_id": "s", "status": "odd"},
            {**record, "external_id": "t", "label_name": "cat", "x": [1]},
            {**record, "external_id": "u", "changed_at": "yesterday",
             "history": [{"new_label": 5}]},
            7])
    assert set(caught.value.details) == {
        "items.0.status", "items.1.label_name", "items.1.x", "items.2.changed_at",
        "items.2.history.0.new_label", "items.3"}
    assert len(jsonl(ctx, pid)) == 2                     # all or nothing
    with pytest.raises(BadInput, match="nothing to import"):
        transfer.import_examples(ctx, pid, [])


def crowd_session(ctx, stream) -> tuple[int, dict]:
    """A crowd project (two answers per query) where a and b answered, a gold check among
    them, and b was suspended afterwards; the annotators' principals."""
    data, _, _ = stream
    pid = new_project(ctx, retrain={"mode": "warm", "every_n_answers": 100000},
                      crowd={"answers_per_query": 2, "max_answers_per_query": 3,
                             "consensus_confidence": 0.5, "gold_share": 0.5})
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 40))
    with ctx.store.session() as s:
        gold = list(s.scalars(select(Example.id).where(
            Example.project_id == pid, Example.status == "accepted").order_by(Example.id)
            .limit(10)))
    annotators.mark_gold(ctx, pid, gold, True)
    people = {name: annotator(ctx, pid, name) for name in ("a", "b")}
    answered = {name: set() for name in people}          # gold check or not, per name
    for round_ in range(12):
        for name, p in people.items():
            q = queries.lease_next_query(ctx, pid, p)
            if q is not None:
                queries.answer_query(ctx, pid, q["id"], *true_answer(q, data.y_train), p)
                with ctx.store.session() as s:      # the lease shows gold as an audit pair
                    answered[name].add(s.get(Query, q["id"]).origin == "gold")
        if round_ >= 3 and answered["a"] == {True, False} and answered["b"]:
            break
    assert answered["a"] == {True, False} and answered["b"], answered
    [b] = [a for a in annotators.list_annotators(ctx, pid)["items"] if a["name"] == "b"]
    annotators.set_suspended(ctx, pid, b["id"], True, "owner")
    return pid, people


def table(ctx, pid) -> dict:
    listed = annotators.list_annotators(ctx, pid)
    return {"alpha": listed["krippendorff_alpha"],
            "items": [{k: v for k, v in a.items() if k != "id"} for a in listed["items"]]}


def gold_set(ctx, pid) -> dict:
    with ctx.store.session() as s:
        return {e.external_id: e.gold_label for e in s.scalars(
            select(Example).where(Example.project_id == pid, Example.gold))}


def test_the_crowd_round_trips_without_tokens_and_annotators_export_their_own(
        ctx, stream, seeded_gold_draws):
    pid, people = crowd_session(ctx, stream)
    secret = access.create_token(ctx, pid, "annotator", "c")["token"]
    before = table(ctx, pid)
    assert {a["name"] for a in before["items"]} == {"a", "b"}
    assert sum(a["gold"]["answers"] for a in before["items"]) >= 1
    assert [a["suspended"] for a in before["items"]] == [False, True]
    text, _ = transfer.export(ctx, pid, "jsonl")
    assert secret not in text and '"token' not in text          # tokens are secrets
    records = [json.loads(line) for line in text.splitlines()]
    assert {a["name"] for a in records[0]["crowd"]["annotators"]} == {"a", "b"}
    assert sum(len(q["answers"]) for r in records for q in r["queries"]) == sum(
        a["answers"] for a in before["items"])

    # Bad crowd fields are named, and nothing is imported.
    target = new_project(ctx, name="copy", crowd={"answers_per_query": 2,
                                                  "max_answers_per_query": 3,
                                                  "consensus_confidence": 0.5,
                                                  "gold_share": 0.5})
    with_query = next(i for i, r in enumerate(records) if r["queries"])
    bad = [dict(r) for r in records]
    bad[0] = {**bad[0], "gold": "yes", "crowd": {**bad[0]["crowd"], "state": {"c": 7}}}
    q = dict(bad[with_query]["queries"][0])
    q["answers"] = [{**q["answers"][0], "annotator": ""}, {"annotator": "z", "gold": 3}]
    bad[with_query] = {**bad[with_query], "queries": [q]}
    with pytest.raises(BadInput) as refused:
        transfer.import_examples(ctx, target, bad)
    assert {"items.0.gold", "items.0.crowd.state",
            f"items.{with_query}.queries.0.answers.0.annotator",
            f"items.{with_query}.queries.0.answers.1.gold"} <= set(refused.value.details)
    assert examples.list_examples(ctx, target)["total"] == 0
    assert annotators.list_annotators(ctx, target)["items"] == []

    half = len(records) // 2                       # two requests, as the client batches
    transfer.import_examples(ctx, target, records[:half], actor="admin")
    transfer.import_examples(ctx, target, records[half:], actor="admin")
    assert table(ctx, target) == before
    assert gold_set(ctx, target) == gold_set(ctx, pid) and len(gold_set(ctx, pid)) == 10
    with ctx.store.session() as s:
        assert s.get(Project, target).crowd_state == s.get(Project, pid).crowd_state
    copied = {r["external_id"]: r for r in jsonl(ctx, target)}
    for i, r in enumerate(records):       # a vote names its query when imported together
        batch = records[:half] if i < half else records[half:]
        together = {q["id"] for b in batch for q in b["queries"]}
        votes = [e for e in copied[r["external_id"]]["history"]
                 if e["reason"].startswith("crowd_answer") and e["query_id"] is not None]
        assert len(votes) == sum(e["why"] == "crowd_answer" and e["query_id"] in together
                                 for e in r["history"])
    # b, still suspended in the copy, is refused there too
    with pytest.raises(Forbidden):
        queries.lease_next_query(ctx, target, annotator(ctx, target, "b"))

    # An annotator's export holds their own answers and record only.
    text, _ = transfer.export(ctx, pid, "jsonl", people["a"])
    mine = [json.loads(line) for line in text.splitlines()]
    assert [a["name"] for a in mine[0]["crowd"]["annotators"]] == ["a"]
    assert mine[0]["crowd"]["state"] is None
    answers = [x for r in mine for q in r["queries"] for x in q["answers"]]
    assert answers and {x["annotator"] for x in answers} == {"a"}
    assert all(q["consensus"] is None and q["origin"] != "gold"
               for r in mine for q in r["queries"])
    assert {r["gold"] for r in mine} == {None}          # gold checks look like audit pairs
    actors = {e["actor"] for r in mine for e in r["history"]
              if e["why"] in ("crowd_answer", "answer_example", "answer_counterexample")}
    assert "b" not in actors and "a" in actors

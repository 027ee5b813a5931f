"""Replayed requests over HTTP against the real server (the shared cluster: gunicorn + two
Celery workers + beat): an ingest and an answer sent again, one after the other and
concurrently (8 clients released together), by ``external_id`` / identical answer and with
an ``Idempotency-Key``. Nothing is stored twice: one example per item, one ``ingest`` label
event per example, one answer per query in the label history. An answer sent again without
the key is a second answer: a 409 that says it was already answered.
"""
from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import func, select

from cincer_service.service.store import Example, LabelEvent, Query
from tests.support.services import wait_until

from .cluster import API, BOOTSTRAP, Http, answer_body, create_project, mint, model_versions, stats, synthetic

pytestmark = pytest.mark.integration

CLIENTS = 8


def together(n: int, send) -> list:
    """``send(i)`` from ``n`` threads released at the same moment; their results."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def one(i):
        barrier.wait(10)
        try:
            results[i] = send(i)
        except BaseException as exc:       # reported by the caller
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def stored(cluster, pid: int) -> dict:
    """external id (or ``#id``) -> (example id, number of ``ingest`` events)."""
    ctx = cluster.context()
    try:
        with ctx.store.session() as s:
            rows = s.execute(select(Example.id, Example.external_id).where(
                Example.project_id == pid)).all()
            events = dict(s.execute(select(LabelEvent.example_id, func.count(LabelEvent.id))
                                    .join(Example, Example.id == LabelEvent.example_id)
                                    .where(Example.project_id == pid,
                                           LabelEvent.why == "ingest")
                                    .group_by(LabelEvent.example_id)).all())
        return {(ext if ext is not None else f"#{eid}"): (eid, events.get(eid, 0))
                for eid, ext in rows}
    finally:
        ctx.store.engine.dispose()


def answer_events(cluster, qid: int) -> list:
    ctx = cluster.context()
    try:
        with ctx.store.session() as s:
            return sorted(tuple(r) for r in s.execute(
                select(LabelEvent.why, LabelEvent.new_label, LabelEvent.actor)
                .where(LabelEvent.query_id == qid)).all())
    finally:
        ctx.store.engine.dispose()


@pytest.fixture
def project(shared_cluster):
    admin = shared_cluster.admin()
    pid = create_project(admin, name="replays")
    return {"id": pid, "admin": admin, "ingest": mint(admin, pid, "ingest", "ingest"),
            "annotator": mint(admin, pid, "annotator", "annotator")}


def ids_of(response) -> list[int]:
    assert response.status_code == 202, response.text
    return [item["id"] for item in response.json()["items"]]


def test_ingest_replays_store_nothing_twice(shared_cluster, project, record):
    pid, url = project["id"], shared_cluster.url
    data = synthetic(200, seed=3)
    path = f"{API}/projects/{pid}/examples"
    client = Http(url, project["ingest"])
    batches = {name: [data.item(i, False, prefix=f"{name}-") for i in range(start, start + 10)]
               for name, start in (("seq", 0), ("conc", 10), ("key-seq", 20), ("key-conc", 30))}

    # Sequential replay by external_id: same ids, outcome "replayed".
    first = client.post(path, {"items": batches["seq"]})
    again = client.post(path, {"items": batches["seq"]})
    assert ids_of(again) == ids_of(first)
    assert [i["outcome"] for i in first.json()["items"]] == ["created"] * 10
    assert [i["outcome"] for i in again.json()["items"]] == ["replayed"] * 10

    # Concurrent replay by external_id.
    responses = together(CLIENTS, lambda i: Http(url, project["ingest"]).post(
        path, {"items": batches["conc"]}))
    assert all(not isinstance(r, BaseException) for r in responses), responses
    concurrent_ids = [ids_of(r) for r in responses]
    assert all(ids == concurrent_ids[0] for ids in concurrent_ids), concurrent_ids
    outcomes = [[i["outcome"] for i in r.json()["items"]] for r in responses]
    created_per_item = [sum(o[k] == "created" for o in outcomes) for k in range(10)]
    assert created_per_item == [1] * 10, outcomes

    # The same with an Idempotency-Key, sequential and concurrent.
    key = f"seq-{uuid.uuid4()}"
    first = client.post(path, {"items": batches["key-seq"]}, headers={"Idempotency-Key": key})
    again = client.post(path, {"items": batches["key-seq"]}, headers={"Idempotency-Key": key})
    assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
    key = f"conc-{uuid.uuid4()}"
    responses = together(CLIENTS, lambda i: Http(url, project["ingest"]).post(
        path, {"items": batches["key-conc"]}, headers={"Idempotency-Key": key}))
    assert all(not isinstance(r, BaseException) for r in responses), responses
    assert all(ids_of(r) == ids_of(responses[0]) for r in responses)

    rows = stored(shared_cluster, pid)
    for name, items in batches.items():
        for item in items:
            assert item["external_id"] in rows, (name, item["external_id"])
            assert rows[item["external_id"]][1] == 1, (name, item["external_id"], rows)
    assert len(rows) == sum(len(b) for b in batches.values())
    record({"database": shared_cluster.database_kind, "examples_stored": len(rows),
            "requests": 2 + CLIENTS + 2 + CLIENTS, "concurrent_outcomes": outcomes[0]})


def test_ingest_without_external_ids_replayed_with_idempotency_key_stores_once(
        shared_cluster, project, record):
    """Without ``external_id`` only the ``Idempotency-Key`` tells a replay from new data."""
    pid, url = project["id"], shared_cluster.url
    data = synthetic(60, seed=4)
    path = f"{API}/projects/{pid}/examples"

    def anonymous(start):
        return [{k: v for k, v in data.item(i, False).items() if k != "external_id"}
                for i in range(start, start + 5)]

    key = f"anon-seq-{uuid.uuid4()}"
    client = Http(url, project["ingest"])
    first = client.post(path, {"items": anonymous(0)}, headers={"Idempotency-Key": key})
    again = client.post(path, {"items": anonymous(0)}, headers={"Idempotency-Key": key})
    assert ids_of(again) == ids_of(first)
    key = f"anon-conc-{uuid.uuid4()}"
    responses = together(CLIENTS, lambda i: Http(url, project["ingest"]).post(
        path, {"items": anonymous(5)}, headers={"Idempotency-Key": key}))
    assert all(not isinstance(r, BaseException) for r in responses), responses
    statuses = sorted(r.status_code for r in responses)
    rows = stored(shared_cluster, pid)
    distinct = sorted({tuple(ids_of(r)) for r in responses if r.status_code == 202})
    record({"database": shared_cluster.database_kind, "statuses": statuses,
            "examples_stored": len(rows), "distinct_id_lists": len(distinct)})
    assert len(rows) == 10, (f"{len(rows)} examples stored for 10 items sent: concurrent "
                             f"requests with one Idempotency-Key were each applied "
                             f"({len(distinct)} different id lists, statuses {statuses})")
    assert all(s == 202 for s in statuses), statuses
    assert len(distinct) == 1


def test_answer_replays_store_nothing_twice(shared_cluster, project, record):
    pid, url, admin = project["id"], shared_cluster.url, project["admin"]
    data = synthetic(BOOTSTRAP + 12, seed=5)
    truth_of = lambda e: int(data.truth[data.index(e["external_id"])])  # noqa: E731
    Http(url, project["ingest"]).post(
        f"{API}/projects/{pid}/examples",
        {"items": [data.item(i, i >= BOOTSTRAP) for i in range(len(data.X))]}, expect=(202,))
    wait_until(lambda: model_versions(admin, pid) and stats(admin, pid)["queries"].get(
        "open", 0) >= 6, 90, 0.3, "open queries")
    annotator = Http(url, project["annotator"])

    def lease():
        leased = annotator.post(f"{API}/projects/{pid}/queries/next", expect=(200,))
        query = leased.json()
        return query["id"], answer_body(query, truth_of)

    def answer(qid, body, headers=None):
        return Http(url, project["annotator"]).post(
            f"{API}/projects/{pid}/queries/{qid}/answer", body, headers=headers)

    def already_answered(response) -> bool:
        return response.status_code == 409 and response.json()["error"]["details"].get(
            "already_answered") is True

    checked = {}
    # The same answer again without a key is a second answer: a 409, nothing applied.
    qid, body = lease()
    first, again = answer(qid, body), answer(qid, body)
    assert first.status_code == 200 and already_answered(again), (first.text, again.text)
    different = dict(body, example_label=1 - body["example_label"])
    assert already_answered(answer(qid, different))
    checked["sequential"] = (qid, body)

    # Sent concurrently without a key: one is applied, every other one is a 409.
    qid, body = lease()
    responses = together(CLIENTS, lambda i: answer(qid, body))
    codes = sorted(getattr(r, "status_code", r) for r in responses)
    assert codes == [200] + [409] * (CLIENTS - 1), [getattr(r, "text", r) for r in responses]
    assert all(already_answered(r) for r in responses if r.status_code == 409)
    checked["concurrent"] = (qid, body)

    # With an Idempotency-Key, sequential and concurrent.
    qid, body = lease()
    key = f"answer-seq-{uuid.uuid4()}"
    first = answer(qid, body, {"Idempotency-Key": key})
    again = answer(qid, body, {"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    checked["key_sequential"] = (qid, body)
    qid, body = lease()
    key = f"answer-conc-{uuid.uuid4()}"
    responses = together(CLIENTS, lambda i: answer(qid, body, {"Idempotency-Key": key}))
    assert [getattr(r, "status_code", r) for r in responses] == [200] * CLIENTS, \
        [getattr(r, "text", r) for r in responses]
    checked["key_concurrent"] = (qid, body)

    for case, (qid, body) in checked.items():
        expected = [("answer_example", body["example_label"], "annotator")]
        if "counterexample_label" in body:
            expected.append(("answer_counterexample", body["counterexample_label"],
                             "annotator"))
        assert answer_events(shared_cluster, qid) == sorted(expected), case
    ctx = shared_cluster.context()
    with ctx.store.session() as s:
        answered = s.scalar(select(func.count(Query.id)).where(
            Query.project_id == pid, Query.status == "answered"))
    ctx.store.engine.dispose()
    assert answered == len(checked)
    record({"database": shared_cluster.database_kind, "queries_answered": answered,
            "answer_requests": 3 + CLIENTS + 2 + CLIENTS})

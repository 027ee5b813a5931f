"""LabelService against a temporary SQLite database, jobs run inline or left to reconcile."""
import threading
import time

import numpy as np
import pytest

from cincer_service.datasets import inject_noise, load_dataset
from cincer_service.service import (BadInput, Conflict, Forbidden, InlineDispatcher, NotFound,
                                    NullDispatcher, Settings, ThreadDispatcher, Unauthorized,
                                    build_service)

N_STREAM = 140


@pytest.fixture(scope="module")
def breast():
    data = load_dataset("breast", seed=0)
    noisy, corrupted = inject_noise(data.y_train, 2, 0.2, seed=0)
    return data, noisy, corrupted


def make_service(tmp_path, dispatcher="inline", **settings):
    service = build_service(Settings(data_dir=str(tmp_path), **settings))
    if dispatcher == "inline":
        service.set_dispatcher(InlineDispatcher(service))
    return service


def new_project(service, **overrides):
    spec = {"name": "breast", "classes": ["malignant", "benign"], "input_shape": [30],
            "model": {"kind": "lr", "max_epochs": 60}, "bootstrap_size": 60,
            "retrain": {"mode": "warm", "every_n_answers": 3}, **overrides}
    return service.create_project(spec)["id"]


def items(breast, start, stop):
    data, noisy, _ = breast
    return [{"external_id": str(i), "x": data.X_train[i].tolist(), "label": int(noisy[i])}
            for i in range(start, stop)]


def annotator(service, pid, name="ann"):
    return service.authenticate(service.create_token(pid, "annotator", name)["token"])


def answer_all(service, pid, truth, principal):
    answered = []
    while (q := service.lease_next_query(pid, principal)) is not None:
        ce = q["counterexample"]
        ce_label = None if ce is None else int(truth[int(ce["external_id"])])
        service.answer_query(pid, q["id"], int(truth[int(q["example"]["external_id"])]),
                             ce_label, principal)
        answered.append(q)
    return answered


def test_bad_batches_store_nothing(tmp_path, breast):
    service = make_service(tmp_path)
    pid = new_project(service)
    good = items(breast, 0, 3)
    bad_cases = {
        "wrong shape": [*good, {"x": [0.1] * 29, "label": 0}],
        "nan": [*good, {"x": [float("nan")] * 30, "label": 0}],
        "inf": [*good, {"x": [float("inf")] * 30, "label": 0}],
        "unknown label": [*good, {"x": [0.1] * 30, "label": 2}],
        "bool label": [*good, {"x": [0.1] * 30, "label": True}],
        "ragged": [*good, {"x": [[0.1], [0.1, 0.2]], "label": 0}],
        "not numbers": [*good, {"x": ["a"] * 30, "label": 0}],
        "empty": [],
        "oversized": items(breast, 0, 5) * 300,
    }
    for case, batch in bad_cases.items():
        with pytest.raises(BadInput) as info:
            service.ingest(pid, batch)
        assert info.value.details, case
    assert service.list_examples(pid)["total"] == 0
    with pytest.raises(NotFound):
        service.ingest(pid + 1, good)


def test_stream_cleaning_end_to_end(tmp_path, breast):
    data, noisy, corrupted = breast
    service = make_service(tmp_path)
    pid = new_project(service)
    statuses = [r["status"] for r in service.ingest(pid, items(breast, 0, 60 + N_STREAM))]
    assert statuses[:60] == ["accepted"] * 60 and set(statuses[60:]) == {"pending"}
    stats = service.stats(pid)
    assert stats["model_version"] == 1 and stats["examples"]["pending"] == 0
    n_queries = stats["queries"]["open"]
    assert n_queries == stats["examples"]["suspicious"] > 0

    answered = answer_all(service, pid, data.y_train, annotator(service, pid))
    assert len(answered) == n_queries
    assert all(q["counterexample"] is not None for q in answered)
    assert all(q["counterexample"]["label"] == q["example"]["prediction"] for q in answered)
    stats = service.stats(pid)
    assert stats["queries"]["answered"] == n_queries
    assert stats["model_version"] >= 2                  # answers triggered retrains
    export = service.export(pid, "jsonl")[0].splitlines()
    import json
    rows = [json.loads(line) for line in export]
    wrong_before = sum(r["original_label"] != data.y_train[int(r["external_id"])] for r in rows)
    wrong_after = sum(r["label"] != data.y_train[int(r["external_id"])] for r in rows)
    assert wrong_after < wrong_before

    # Histories are exact: ingest first, then one event per answer touching the example.
    for q in answered[:10]:
        history = service.get_example(pid, q["example"]["id"])["history"]
        assert history[0]["why"] == "ingest" and history[0]["old_label"] is None
        assert history[0]["new_label"] == noisy[int(q["example"]["external_id"])]
        answer = [h for h in history if h["query_id"] == q["id"]]
        assert len(answer) == 1 and answer[0]["why"] == "answer_example"
        assert answer[0]["new_label"] == data.y_train[int(q["example"]["external_id"])]
        final = service.get_example(pid, q["example"]["id"])
        assert final["label"] == history[-1]["new_label"] and final["confirmed"]

    # Counter-examples computed after the answers never show a confirmed example again.
    confirmed = {i for q in answered for i in (q["example"]["id"], q["counterexample"]["id"])}
    service.ingest(pid, items(breast, 60 + N_STREAM, 60 + N_STREAM + 120))
    later = answer_all(service, pid, data.y_train, annotator(service, pid, "later"))
    assert later and all(q["counterexample"]["id"] not in confirmed for q in later)


def test_leases_answers_and_conflicts(tmp_path, breast):
    data = breast[0]
    service = make_service(tmp_path, lease_seconds=0.5)
    pid = new_project(service)
    service.ingest(pid, items(breast, 0, 60 + N_STREAM))
    alice, bob = annotator(service, pid, "alice"), annotator(service, pid, "bob")

    # Two annotators racing for queries never hold the same one.
    leased = {"alice": [], "bob": []}

    def grab(who, principal):
        for _ in range(3):
            q = service.lease_next_query(pid, principal)
            if q is not None:
                leased[who].append(q["id"])
    with_threads = [threading.Thread(target=grab, args=(w, p))
                    for w, p in (("alice", alice), ("bob", bob))]
    for t in with_threads:
        t.start()
    for t in with_threads:
        t.join()
    assert leased["alice"] and leased["bob"]
    assert not set(leased["alice"]) & set(leased["bob"])

    qid = leased["alice"][0]
    q = service.get_query(pid, qid)
    truth = int(data.y_train[int(q["example"]["external_id"])])
    ce_truth = int(data.y_train[int(q["counterexample"]["external_id"])])
    with pytest.raises(Conflict):                      # bob does not hold alice's lease
        service.answer_query(pid, qid, truth, ce_truth, bob)
    with pytest.raises(BadInput):
        service.answer_query(pid, qid, 5, ce_truth, alice)
    first = service.answer_query(pid, qid, truth, ce_truth, alice)
    assert first["status"] == "answered"
    assert service.answer_query(pid, qid, truth, ce_truth, alice) == first   # idempotent
    with pytest.raises(Conflict):
        service.answer_query(pid, qid, 1 - truth, ce_truth, alice)
    history = service.get_example(pid, q["example"]["id"])["history"]
    assert sum(h["query_id"] == qid for h in history) == 1

    # An expired lease returns the query to the pool; the old holder's answer is refused.
    stale = leased["bob"][0]
    time.sleep(0.6)
    again = service.lease_next_query(pid, alice)
    assert again is not None
    if again["id"] == stale:
        with pytest.raises(Conflict):
            service.answer_query(pid, stale, 0, None, bob)
    with pytest.raises(NotFound):
        service.answer_query(pid, 10_000, 0, None, alice)


def test_auth_roles(tmp_path):
    service = make_service(tmp_path)
    admin_secret = service.ensure_admin_token(None)
    assert service.ensure_admin_token(None) is None            # created once
    admin = service.authenticate(admin_secret)
    pid, other = new_project(service), new_project(service, name="other")
    ingest = service.authenticate(service.create_token(pid, "ingest", "i")["token"])
    viewer = service.authenticate(service.create_token(pid, "viewer", "v")["token"])
    with pytest.raises(Unauthorized):
        service.authenticate(None)
    with pytest.raises(Unauthorized):
        service.authenticate("not-a-token")
    service.authorize(admin, None, "admin")
    service.authorize(ingest, pid, "admin", "ingest")
    service.authorize(viewer, pid)
    for principal, project, roles in ((ingest, None, ("admin",)), (ingest, other, ()),
                                      (viewer, pid, ("admin", "ingest")),
                                      (ingest, pid, ("admin", "annotator"))):
        with pytest.raises(Forbidden):
            service.authorize(principal, project, *roles)
    with pytest.raises(BadInput):
        service.create_token(pid, "superuser", "x")
    fixed = "a-token-from-automation"
    assert service.ensure_admin_token(fixed) == fixed
    assert service.authenticate(fixed).role == "admin"


def test_lost_messages_are_redone_by_reconcile(tmp_path, breast):
    service = make_service(tmp_path, dispatcher=None)       # every message is lost
    assert isinstance(service.dispatcher, NullDispatcher)
    pid = new_project(service)
    service.ingest(pid, items(breast, 0, 60 + N_STREAM))
    assert service.stats(pid)["model_version"] is None
    service.set_dispatcher(InlineDispatcher(service))
    for _ in range(3):        # retrain first, then screening, then counter-examples
        service.reconcile()
    stats = service.stats(pid)
    assert stats["model_version"] == 1 and stats["examples"]["pending"] == 0
    assert stats["queries"]["computing"] == 0 and stats["queries"]["open"] > 0
    assert service.reconcile() == {}                          # nothing left to redo


def test_retrains_coalesce(tmp_path, breast):
    """Answers arriving during a retrain cause one more retrain, not one each."""
    data = breast[0]
    service = make_service(tmp_path, dispatcher=None)
    pid = new_project(service, retrain={"mode": "scratch", "every_n_answers": 1})
    service.set_dispatcher(InlineDispatcher(service))
    service.ingest(pid, items(breast, 0, 60 + N_STREAM))
    service.set_dispatcher(NullDispatcher())
    principal = annotator(service, pid)
    for _ in range(4):
        q = service.lease_next_query(pid, principal)
        service.answer_query(pid, q["id"], int(data.y_train[int(q["example"]["external_id"])]),
                             None, principal)
    assert service.stats(pid)["retrain_wanted"]
    assert service.retrain(pid) == 2
    assert service.retrain(pid) is None                       # nothing new to learn
    assert not service.stats(pid)["retrain_wanted"]
    assert service.request_retrain(pid)["status"] == "queued"
    assert service.retrain(pid) == 3


def test_thread_dispatcher_works_in_background(tmp_path, breast):
    service = make_service(tmp_path, dispatcher=None, reconcile_seconds=0.2)
    worker = ThreadDispatcher(service)
    service.set_dispatcher(worker)
    worker.start()
    try:
        pid = new_project(service)
        started = time.perf_counter()
        service.ingest(pid, items(breast, 0, 60 + N_STREAM))
        assert time.perf_counter() - started < 5       # the request does not train
        deadline = time.time() + 60
        while time.time() < deadline:
            stats = service.stats(pid)
            if stats["model_version"] and not stats["examples"]["pending"] \
                    and not stats["queries"]["computing"]:
                break
            time.sleep(0.2)
        assert stats["model_version"] == 1 and stats["queries"]["open"] > 0
    finally:
        worker.stop()


def test_audit_ranks_planted_errors_and_enqueues(tmp_path, breast):
    data, noisy, corrupted = breast
    service = make_service(tmp_path)
    pid = new_project(service, bootstrap_size=200)
    service.ingest(pid, items(breast, 0, 200))
    audit = service.create_audit(pid, ["self_influence", "margin", "near_duplicates"], 20)
    audit = service.get_audit(pid, audit["id"])
    assert audit["status"] == "done" and audit["progress"] == 1.0
    suspects = [int(service.get_example(pid, s["example_id"])["external_id"])
                for s in audit["suspects"]]
    assert np.mean(corrupted[suspects]) > 2 * np.mean(corrupted[:200])
    with pytest.raises(BadInput):
        service.create_audit(pid, ["no_such_detector"], 5)
    enqueued = service.enqueue_audit(pid, audit["id"], 5)
    assert enqueued["enqueued"] == 5
    q = service.get_query(pid, enqueued["query_ids"][0])
    assert q["origin"] == "audit" and q["status"] == "open"
    assert q["counterexample"] is None or q["counterexample"]["id"] != q["example"]["id"]


def test_demo_is_seeded_once(tmp_path):
    from cincer_service.service import seed_demo
    service = make_service(tmp_path, dispatcher=None)
    project = seed_demo(service, n_examples=200, bootstrap_size=100)
    assert project["name"] == "demo-digits" and project["input_shape"] == [64]
    assert service.list_examples(project["id"])["total"] == 200
    assert seed_demo(service) is None

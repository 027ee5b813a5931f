"""verdicts: an ingest that waits for its verdicts (accepted, suspicious with the pair leased
to the caller, unscreened with the reason, pending past the deadline), the example.screened
event, and the model cache bounded by bytes."""
import threading
import time
from datetime import datetime, timezone

import numpy as np
import pytest
from sqlalchemy import select

from cincer_service.service import (
    BadInput,
    Conflict,
    Dispatcher,
    NullDispatcher,
    ThreadDispatcher,
    access,
    examples,
    jobs,
    queries,
    runner,
    verdicts,
    webhooks,
)
from cincer_service.service.model_cache import (
    MODEL_OVERHEAD_BYTES,
    ModelCache,
    entry_bytes,
    new_classifier,
    weights_to_bytes,
)
from cincer_service.service.store import Example, ModelVersion, Project, Query, WebhookDelivery
from tests.support.service import BOOTSTRAP, annotator, items, make_context, new_project

from .test_webhooks import Receiver

STREAM = (BOOTSTRAP, BOOTSTRAP + 60)      # 60 stream items: some accepted, some suspicious


def assistant(ctx, pid, name="assistant"):
    """A project admin token: it ingests and answers (the assistant's token)."""
    return access.authenticate(ctx, access.create_token(ctx, pid, "admin", name)["token"])


@pytest.fixture
def trained(ctx, stream):
    """A breast project whose first model is trained (bootstrap ingested, jobs inline)."""
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP))
    return pid


def test_accepted_and_suspicious_with_the_pair_leased_to_the_caller(ctx, stream, trained):
    pid, me = trained, assistant(ctx, trained)
    results = examples.ingest(ctx, pid, items(stream, *STREAM), actor=me.name)
    answered = verdicts.wait_for_verdicts(ctx, pid, results, me, 2.0)
    assert [r["id"] for r in answered] == [r["id"] for r in results]
    by_verdict = {}
    for item in answered:
        by_verdict.setdefault(item["verdict"], []).append(item)
    assert set(by_verdict) == {"accepted", "suspicious"}
    for item in answered:
        assert len(item["probabilities"]) == 2 and item["prediction"] in (0, 1)
        assert item["prediction_name"] == ["malignant", "benign"][item["prediction"]]
        assert item["margin"] == pytest.approx(
            max(item["probabilities"]) - item["probabilities"][int(stream.noisy[
                int(examples.get_example(ctx, pid, item["id"])["external_id"])])], abs=1e-6)
    for item in by_verdict["accepted"]:
        assert item["query"] is None and item["reason"] is None and item["margin"] < 0.2
    with ctx.store.session() as s:
        for item in by_verdict["suspicious"]:
            q = item["query"]
            assert item["margin"] >= 0.2 and q["leased_to_you"] and q["status"] == "leased"
            ce = q["counterexample"]
            assert ce is not None and ce["label"] == item["prediction"]
            assert {"id", "external_id", "x", "label", "label_name", "prediction",
                    "probabilities"} <= set(ce)
            row = s.get(Query, q["id"])
            assert row.example_id == item["id"] and row.lease_holder == me.token_id
            assert row.status == "leased" and q["lease_expires_at"] == row.lease_expires_at
    # Nobody else gets these pairs meanwhile; the assistant answers with the same token.
    mine = {item["query"]["id"] for item in by_verdict["suspicious"]}
    other = annotator(ctx, pid, "someone")
    q = queries.lease_next_query(ctx, pid, other)
    assert q is None or q["id"] not in mine
    first = by_verdict["suspicious"][0]
    done = queries.answer_query(ctx, pid, first["query"]["id"], first["prediction"],
                                first["prediction"], me)
    assert done["status"] == "answered" and done["answer"]["annotator"] == me.name
    # Asked again (a replay), the item keeps its verdict; the answered pair stays answered.
    again = verdicts.wait_for_verdicts(ctx, pid, [{"id": first["id"]}], me, 1.0)[0]
    assert again["verdict"] == "suspicious" and again["query"]["status"] == "answered"


def test_an_ingest_token_gets_the_pair_but_not_its_lease(ctx, stream, trained):
    pid = trained
    ingester = access.authenticate(ctx, access.create_token(ctx, pid, "ingest", "feed")["token"])
    results = examples.ingest(ctx, pid, items(stream, *STREAM))
    answered = verdicts.wait_for_verdicts(ctx, pid, results, ingester, 2.0)
    suspicious = [r for r in answered if r["verdict"] == "suspicious"]
    assert suspicious and all(not r["query"]["leased_to_you"] and r["query"]["status"] ==
                              "open" for r in suspicious)


def test_unscreened_without_a_model(tmp_path, stream):
    ctx = make_context(tmp_path, dispatcher=None)        # the first model never comes
    pid = new_project(ctx)
    me = assistant(ctx, pid)
    boot = examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP))
    waited = verdicts.wait_for_verdicts(ctx, pid, boot[:5], me, 5.0)
    assert {r["verdict"] for r in waited} == {"unscreened"}
    assert all("bootstrap" in r["reason"] and r["margin"] is None for r in waited)
    later = examples.ingest(ctx, pid, items(stream, BOOTSTRAP, BOOTSTRAP + 3))
    assert {r["status"] for r in later} == {"pending"}
    waited = verdicts.wait_for_verdicts(ctx, pid, later, me, 5.0)
    assert {r["verdict"] for r in waited} == {"unscreened"}
    assert all(r["reason"].startswith("no model yet") for r in waited)


def test_unscreened_with_the_reason_when_screening_backs_off(ctx, stream, trained):
    pid, me = trained, assistant(ctx, trained)
    ctx.set_dispatcher(NullDispatcher())
    runner.record_failure(ctx, jobs.SCREEN(pid), RuntimeError("the model is broken"))
    results = examples.ingest(ctx, pid, items(stream, *STREAM)[:4])
    waited = verdicts.wait_for_verdicts(ctx, pid, results, me, 5.0)
    assert {r["verdict"] for r in waited} == {"unscreened"}
    assert all("screening is failing" in r["reason"] and "the model is broken" in r["reason"]
               for r in waited)


class GatedDispatcher(Dispatcher):
    """Runs each job on its own thread once ``gate`` is set: a screen job slower than any
    deadline."""

    def __init__(self, ctx):
        self.ctx, self.gate, self.threads = ctx, threading.Event(), []

    def submit(self, submission):
        def later():
            self.gate.wait(30)
            runner.run_job(self.ctx, submission)
        thread = threading.Thread(target=later, daemon=True)
        self.threads.append(thread)
        thread.start()

    def release(self):
        self.gate.set()
        while self.threads:
            self.threads.pop(0).join(30)


def test_pending_when_the_screen_job_misses_the_deadline(ctx, stream, trained):
    pid, me = trained, assistant(ctx, trained)
    slow = GatedDispatcher(ctx)
    ctx.set_dispatcher(slow)
    try:
        results = examples.ingest(ctx, pid, items(stream, *STREAM)[:5])
        waited = verdicts.wait_for_verdicts(ctx, pid, results, me, 0.05)
        # Back before the screen job could even start (it waits for the gate).
        assert [r["verdict"] for r in waited] == ["pending"] * 5
        assert all(r["reason"] is None and r["query"] is None for r in waited)
        assert not slow.gate.is_set()
    finally:
        slow.release()
    later = verdicts.wait_for_verdicts(ctx, pid, results, me, 5.0)
    assert {r["verdict"] for r in later} <= {"accepted", "suspicious"}


def test_a_waiting_request_counts_what_waits_and_reads_everything_only_now_and_then(
        ctx, stream, trained, monkeypatch):
    pid, me = trained, assistant(ctx, trained)
    slow = GatedDispatcher(ctx)
    ctx.set_dispatcher(slow)
    full_reads = []
    read = verdicts.read_verdicts
    monkeypatch.setattr(verdicts, "read_verdicts",
                        lambda *a, **k: full_reads.append(1) or read(*a, **k))
    try:
        results = examples.ingest(ctx, pid, items(stream, *STREAM)[:5])
        ids = [r["id"] for r in results]
        with ctx.store.engine.connect() as conn:
            assert verdicts.waiting_count(conn, pid, ids) == 5
        started = time.monotonic()
        waited = verdicts.wait_for_verdicts(ctx, pid, results, me, 0.4)
        assert time.monotonic() - started < 2.0
        assert [r["verdict"] for r in waited] == ["pending"] * 5
        # ~25 polls in 0.4 s: one full read first, one per FULL_READ_EVERY counts, one last.
        assert 2 <= len(full_reads) <= 2 + 0.4 / verdicts.POLL_SECONDS / verdicts.FULL_READ_EVERY
    finally:
        slow.release()
    with ctx.store.engine.connect() as conn:
        assert verdicts.waiting_count(conn, pid, ids) == 0
    later = verdicts.wait_for_verdicts(ctx, pid, results, me, 5.0)
    assert {r["verdict"] for r in later} <= {"accepted", "suspicious"}


def test_a_wait_outside_its_limits_is_refused_before_anything_is_stored(ctx, trained):
    me = assistant(ctx, trained)
    for wait in (0, -1, 10.5):
        with pytest.raises(BadInput):
            verdicts.wait_for_verdicts(ctx, trained, [{"id": 1}], me, wait)
    with pytest.raises(BadInput) as info:
        verdicts.check_wait(1.0, verdicts.MAX_WAIT_ITEMS + 1)
    assert "smaller batches" in info.value.message


def test_every_screened_example_emits_example_screened(ctx, stream, trained):
    pid = trained
    with Receiver() as receiver:
        endpoint = webhooks.create_endpoint(ctx, pid, receiver.url, ["example.screened"])
        results = examples.ingest(ctx, pid, items(stream, *STREAM))
        with ctx.store.session() as s:
            sent = s.scalars(select(WebhookDelivery).where(
                WebhookDelivery.endpoint_id == endpoint["id"])).all()
            rows = {e.id: e for e in s.scalars(select(Example).where(
                Example.id.in_([r["id"] for r in results])))}
            pairs = {q.example_id: q.id for q in s.scalars(select(Query).where(
                Query.example_id.in_(list(rows))))}
    assert {d.event for d in sent} == {"example.screened"}
    data = {d.payload["data"]["example_id"]: d.payload["data"] for d in sent}
    assert set(data) == set(rows)
    verdicts_seen = set()
    for eid, event in data.items():
        e = rows[eid]
        verdicts_seen.add(event["verdict"])
        assert event["verdict"] == e.status and event["margin"] == pytest.approx(e.screen_margin)
        assert event["prediction"] == e.screen_prediction
        assert event["probabilities"] == pytest.approx(e.screen_probabilities)
        assert event["query_id"] == pairs.get(eid) and event["model_version"] == 1
        assert event["external_id"] == e.external_id and event["label"] == e.label
    assert verdicts_seen == {"accepted", "suspicious"}


# -- the model cache, bounded by bytes --------------------------------------------------------
class FakeState:
    """What ``entry_bytes`` reads of a ``ModelState``: its arrays and its cache."""

    def __init__(self, n, d=30, c=2):
        self.X = np.zeros((n, d), np.float32)
        self.y = np.zeros(n, np.int64)
        self.h_aug = np.zeros((n, d + 1))
        self.probs = np.zeros((n, c))
        self.cache = {"arrays": (self.h_aug, self.probs), "queries": {}}


def test_the_model_cache_is_bounded_by_bytes_not_by_count(tmp_path):
    project = Project(name="p", classes=["a", "b"], input_shape=[30], input_kind="tabular",
                      model={"kind": "lr", "seed": 0})
    blob = weights_to_bytes(new_classifier(project).get_weights())
    stamp = datetime(2024, 1, 1, tzinfo=timezone.utc)
    versions = [ModelVersion(id=i, created_at=stamp, weights=blob) for i in range(1, 8)]
    probe = ModelCache(max_bytes=2**40)
    one = probe.entry(project, versions[0])["bytes"]
    assert one == entry_bytes(probe.entry(project, versions[0])) >= MODEL_OVERHEAD_BYTES

    cache = ModelCache(max_bytes=3 * one + one // 2)       # room for three small entries
    for v in versions[:5]:
        cache.entry(project, v)
    assert [k[0] for k in cache.keys()] == [3, 4, 5] and cache.total_bytes == 3 * one
    cache.entry(project, versions[2])                    # used again: the newest
    cache.entry(project, versions[5])
    assert [k[0] for k in cache.keys()] == [5, 3, 6]

    # One entry whose model state grows past the budget pushes the others out.
    entry = cache.entry(project, versions[6])
    entry["state"] = FakeState(n=6000)
    size = entry_bytes(entry)
    assert size > 3 * one
    cache.resized(entry, size)
    assert [k[0] for k in cache.keys()] == [7] and cache.total_bytes == size

    # The budget comes from the settings (CINCER_MODEL_CACHE_MB).
    small = make_context(tmp_path, dispatcher=None, model_cache_mb=1.5)
    assert small.models.max_bytes == int(1.5 * 2**20)


def test_a_cold_project_loads_its_model_again(ctx, stream, trained):
    pid, me = trained, assistant(ctx, trained)
    ctx.models.max_bytes = 1                              # keep only the entry in use
    ctx.models._entries.clear()
    results = examples.ingest(ctx, pid, items(stream, *STREAM)[:10])
    waited = verdicts.wait_for_verdicts(ctx, pid, results, me, 2.0)
    assert {r["verdict"] for r in waited} <= {"accepted", "suspicious"}
    assert len(ctx.models) == 1


def test_an_answered_pair_is_not_leased_again(ctx, stream, trained):
    pid, me = trained, assistant(ctx, trained)
    results = examples.ingest(ctx, pid, items(stream, *STREAM))
    first = verdicts.wait_for_verdicts(ctx, pid, results, me, 2.0)
    pair = next(r for r in first if r["verdict"] == "suspicious")
    other = assistant(ctx, pid, "other-assistant")
    again = verdicts.wait_for_verdicts(ctx, pid, [{"id": pair["id"]}], other, 1.0)[0]
    assert not again["query"]["leased_to_you"] and again["query"]["status"] == "leased"
    with pytest.raises(Conflict):
        queries.answer_query(ctx, pid, pair["query"]["id"], 0, 0, other)


def test_embedded_mode_screens_inline_when_the_worker_thread_is_busy(ctx, stream, trained):
    pid, me = trained, assistant(ctx, trained)
    busy = threading.Event()
    released = threading.Event()

    def stuck(submission):          # a worker thread held up (as by a long retrain)
        busy.set()
        released.wait(30)
        return runner.run_job(ctx, submission)

    worker = ThreadDispatcher(stuck, interval=60)
    ctx.set_dispatcher(worker)
    worker.start()
    try:
        assert busy.wait(30)        # the worker is inside its first job (the reconciler)
        results = examples.ingest(ctx, pid, items(stream, *STREAM)[:20])
        waited = verdicts.wait_for_verdicts(ctx, pid, results, me, 5.0)
        assert {r["verdict"] for r in waited} <= {"accepted", "suspicious"}
        assert not released.is_set()
        for r in waited:
            if r["verdict"] == "suspicious":
                assert r["query"]["leased_to_you"] and r["query"]["status"] == "leased"
    finally:
        released.set()
        worker.stop()

"""webhooks: endpoints, the outbox (events in the causing transaction), signed delivery
with retries, and the Standard Webhooks signature."""
import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import event, select

import cincer_service.detectors as detectors
from cincer_service.service import (
    BadInput,
    Conflict,
    Forbidden,
    NotFound,
    NullDispatcher,
    audits,
    examples,
    queries,
    runner,
    webhooks,
)
from cincer_service.service.store import WebhookDelivery, utcnow
from tests.support.service import BOOTSTRAP, annotator, items, make_context, new_project

# -- a receiver on 127.0.0.1 ----------------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 in a thread that records each POST (header names in lower
    case) and answers with the next of ``statuses`` (the last one repeats), after ``delay``
    seconds."""

    def __init__(self, statuses=(200,), delay: float = 0.0):
        self.statuses, self.delay = list(statuses), delay
        self.requests: list[tuple[dict, bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()},
                                              body))
                    status = receiver.statuses[min(len(receiver.requests),
                                                   len(receiver.statuses)) - 1]
                time.sleep(receiver.delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:                 # the sender gave up waiting
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def payloads(self) -> list[dict]:
        """The JSON bodies received so far."""
        with self.lock:
            return [json.loads(body) for _, body in self.requests]


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def deliveries(ctx) -> list[WebhookDelivery]:
    """Every delivery row, oldest first."""
    with ctx.store.session() as s:
        return s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()


def small_project(ctx, url, events=None, n=6, stream=None):
    """A project with ``n`` bootstrap examples stored (no model) and one endpoint."""
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, n))
    endpoint = webhooks.create_endpoint(ctx, pid, url, events)
    return pid, endpoint


def flip(stream, start, stop) -> list[dict]:
    """Items ``start..stop`` re-sent with the other label: each is an ``ingest_update``."""
    return [{**item, "label": 1 - item["label"]} for item in items(stream, start, stop)]


# -- the scheme ------------------------------------------------------------------------------
SECRET = "whsec_" + base64.b64encode(bytes(range(24))).decode()


def test_signature_known_answer_and_verify():
    msg_id, timestamp, body = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1700000000, '{"a":1}'
    digest = hmac.new(bytes(range(24)), f"{msg_id}.{timestamp}.{body}".encode(),
                      hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    assert webhooks.sign(SECRET, msg_id, timestamp, body) == expected
    assert expected == "v1,157g/wFyScFQAwkyh3PkmlSZxyUB0XVVv76yP3u+jos="   # also by openssl
    # The published Standard Webhooks example.
    assert webhooks.sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                         "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                         '{"test": 2432232314}') == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    headers = webhooks.sign_headers(SECRET, msg_id, body, timestamp)
    assert headers["webhook-id"] == msg_id and headers["webhook-timestamp"] == str(timestamp)
    assert headers["content-type"] == "application/json"
    assert webhooks.verify(SECRET, headers, body, now=timestamp + 10) == {"a": 1}
    upper = {k.title(): v for k, v in headers.items()}            # header case is irrelevant
    assert webhooks.verify(SECRET, upper, body.encode(), now=timestamp) == {"a": 1}
    rotated = {**headers, "webhook-signature": "v1,bm9wZQ== v2,x " + expected}
    assert webhooks.verify(SECRET, rotated, body, now=timestamp) == {"a": 1}

    other = webhooks.new_secret()
    for bad in [lambda: webhooks.verify(SECRET, headers, '{"a":2}', now=timestamp),
                lambda: webhooks.verify(other, headers, body, now=timestamp),
                lambda: webhooks.verify(SECRET, headers, body, now=timestamp + 301),
                lambda: webhooks.verify(SECRET, headers, body, now=timestamp - 301),
                lambda: webhooks.verify(SECRET, {**headers, "webhook-id": "msg_x"}, body,
                                        now=timestamp),
                lambda: webhooks.verify(SECRET, {"webhook-id": msg_id}, body, now=timestamp),
                lambda: webhooks.verify(SECRET, {**headers, "webhook-timestamp": "soon"}, body,
                                        now=timestamp)]:
        with pytest.raises(webhooks.InvalidSignature):
            bad()


def test_secrets_are_whsec_base64_of_24_random_bytes():
    a, b = webhooks.new_secret(), webhooks.new_secret()
    assert a != b and a.startswith("whsec_")
    assert len(base64.b64decode(a[len("whsec_"):], validate=True)) >= 24


# -- endpoints -----------------------------------------------------------------------------
def test_endpoints_are_validated_listed_and_deactivated(ctx, stream):
    pid = new_project(ctx)
    other = new_project(ctx, name="other")
    for url in ["ftp://example.com/x", "example.com/hook", "http://", "http://a b/",
                "https://example.com/" + "x" * 2000, None, ""]:
        with pytest.raises(BadInput):
            webhooks.create_endpoint(ctx, pid, url)
    with pytest.raises(BadInput):
        webhooks.create_endpoint(ctx, pid, "https://example.com/hook", ["model.deleted"])
    with pytest.raises(BadInput):
        webhooks.create_endpoint(ctx, pid, "https://example.com/hook", [])
    with pytest.raises(NotFound):
        webhooks.create_endpoint(ctx, 999, "https://example.com/hook")

    every = webhooks.create_endpoint(ctx, pid, "https://example.com/hook")
    assert every["events"] == list(webhooks.EVENTS) and every["secret"].startswith("whsec_")
    some = webhooks.create_endpoint(ctx, pid, "http://127.0.0.1:9/x",
                                    ["query.answered", "label.changed", "query.answered"])
    assert some["events"] == ["query.answered", "label.changed"]
    listed = webhooks.list_endpoints(ctx, pid)
    assert [e["id"] for e in listed] == [every["id"], some["id"]]
    assert all("secret" not in e for e in listed)
    assert webhooks.list_endpoints(ctx, other) == []
    with pytest.raises(NotFound):
        webhooks.delete_endpoint(ctx, other, every["id"])
    with pytest.raises(NotFound):
        webhooks.list_deliveries(ctx, other, every["id"])
    webhooks.delete_endpoint(ctx, pid, every["id"])
    webhooks.delete_endpoint(ctx, pid, every["id"])                   # again: a no-op
    assert [e["id"] for e in webhooks.list_endpoints(ctx, pid)] == [some["id"]]
    assert webhooks.list_deliveries(ctx, pid, every["id"]) == {"items": [], "total": 0}


def test_emit_without_endpoints_is_one_query(ctx, stream):
    pid = new_project(ctx)
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(ctx.store.engine, "before_cursor_execute", count)
    try:
        with ctx.store.session() as s:
            assert not webhooks.emit(s, pid, "label.changed", {"example_id": 1})
            assert not webhooks.emit(s, pid, "query.answered", {"query_id": 1})
    finally:
        event.remove(ctx.store.engine, "before_cursor_execute", count)
    assert len([st for st in statements if "webhook" in st]) == 1
    assert deliveries(ctx) == []
    with ctx.store.session() as s, pytest.raises(ValueError):
        webhooks.emit(s, pid, "no.such.event", {})


# -- events, each in the transaction that causes it ------------------------------------------
def test_every_event_is_emitted_in_its_transaction(tmp_path, stream, monkeypatch):
    data, noisy, _ = stream
    ctx = make_context(tmp_path)
    with Receiver() as receiver:
        pid = new_project(ctx)
        endpoint = webhooks.create_endpoint(ctx, pid, receiver.url)
        quiet = webhooks.create_endpoint(ctx, pid, receiver.url, ["model.created"])
        examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 140))
        kinds = {d.event for d in deliveries(ctx) if d.endpoint_id == endpoint["id"]}
        assert kinds == {"model.created", "audit.finished", "example.suspicious",
                         "example.screened", "query.opened"}
        assert {d.event for d in deliveries(ctx) if d.endpoint_id == quiet["id"]} == \
            {"model.created"}
        by_type = {}
        for p in receiver.payloads():
            by_type.setdefault(p["type"], []).append(p)
        model = by_type["model.created"][0]["data"]
        assert model["project_id"] == pid and model["version"] == 1
        assert {"generation", "mode", "train_size", "train_accuracy"} <= set(model)
        assert by_type["audit.finished"][0]["data"]["status"] == "done"
        suspicious = by_type["example.suspicious"][0]["data"]
        q = queries.get_query(ctx, pid, suspicious["query_id"])
        assert q["example"]["id"] == suspicious["example_id"]
        assert suspicious["margin"] == pytest.approx(q["margin"])
        opened = {p["data"]["query_id"]: p["data"] for p in by_type["query.opened"]}
        assert opened[q["id"]]["counterexample_id"] == q["counterexample"]["id"]
        assert opened[q["id"]]["origin"] == "stream"

        # An answer: query.answered plus label.changed for each label it changes.
        ann = annotator(ctx, pid)
        q = queries.lease_next_query(ctx, pid, ann)
        truth = (int(data.y_train[int(q["example"]["external_id"])]),
                 int(data.y_train[int(q["counterexample"]["external_id"])]))
        before = len(deliveries(ctx))
        queries.answer_query(ctx, pid, q["id"], *truth, ann)
        new = [d for d in deliveries(ctx)[before:] if d.endpoint_id == endpoint["id"]]
        changed = [side for side, label in (("example", truth[0]), ("counterexample", truth[1]))
                   if q[side]["label"] != label]
        assert [d.event for d in new][:1 + len(changed)] == \
            ["query.answered"] + ["label.changed"] * len(changed)
        data_answered = new[0].payload["data"]
        assert data_answered == {"project_id": pid, "query_id": q["id"],
                                 "example_id": q["example"]["id"],
                                 "counterexample_id": q["counterexample"]["id"],
                                 "example_label": truth[0], "counterexample_label": truth[1],
                                 "annotator": ann.name,
                                 "answered_at": data_answered["answered_at"]}
        for d in new[1:1 + len(changed)]:
            assert d.payload["data"]["why"].startswith("answer_")
            assert d.payload["data"]["query_id"] == q["id"]

        # A second answer (the same or another) and a forbidden correction emit nothing.
        before = len(deliveries(ctx))
        for again in (truth, (1 - truth[0], truth[1])):
            with pytest.raises(Conflict):
                queries.answer_query(ctx, pid, q["id"], *again, ann)
        with pytest.raises(Forbidden):
            queries.correct_answer(ctx, pid, q["id"], 1 - truth[0], truth[1], "oops",
                                   annotator(ctx, pid, "someone-else"))
        assert len(deliveries(ctx)) == before

        # A use case that fails after emitting leaves no delivery behind (rolled back).
        q2 = queries.lease_next_query(ctx, pid, ann)

        def broken(s, pid_, n):
            raise RuntimeError("boom")

        monkeypatch.setattr(queries, "count_towards_retrain", broken)
        with pytest.raises(RuntimeError):
            queries.answer_query(ctx, pid, q2["id"], 0, 0 if q2["counterexample"] else None,
                                 ann)
        monkeypatch.undo()
        assert len(deliveries(ctx)) == before
        assert queries.get_query(ctx, pid, q2["id"])["status"] == "leased"

        # A correction: label.changed with why=correction and the reason.
        queries.correct_answer(ctx, pid, q["id"], 1 - truth[0], truth[1], "misread", ann)
        new = [d for d in deliveries(ctx)[before:] if d.endpoint_id == endpoint["id"]]
        assert [d.event for d in new] == ["label.changed"]
        assert new[0].payload["data"] == {
            "project_id": pid, "example_id": q["example"]["id"],
            "external_id": q["example"]["external_id"], "old_label": truth[0],
            "old_label_name": ["malignant", "benign"][truth[0]], "new_label": 1 - truth[0],
            "new_label_name": ["malignant", "benign"][1 - truth[0]], "why": "correction",
            "cause": "correction", "actor": ann.name, "query_id": q["id"], "reason": "misread"}

        # An ingest update: label.changed with why=ingest_update.
        before = len(deliveries(ctx))
        examples.ingest(ctx, pid, flip(stream, 0, 1), actor="loader")
        new = deliveries(ctx)[before:]
        assert [(d.event, d.payload["data"]["why"], d.payload["data"]["actor"]) for d in new] \
            == [("label.changed", "ingest_update", "loader")]

        # A failed audit is finished too.
        def failing(*args, **kwargs):
            raise RuntimeError("detector broke")

        monkeypatch.setattr(detectors, "find_issues", failing)
        before = len(deliveries(ctx))
        audits.create_audit(ctx, pid, ["margin"], 5)      # the inline job fails, logged
        monkeypatch.undo()
        new = [d for d in deliveries(ctx)[before:] if d.endpoint_id == endpoint["id"]]
        assert [(d.event, d.payload["data"]["status"]) for d in new] == \
            [("audit.finished", "failed")]
        assert "detector broke" in new[0].payload["data"]["error"]

        # Everything queued was delivered, signed, and verifies.
        assert {d.status for d in deliveries(ctx)} == {"delivered"}
        assert len(receiver.requests) == len(deliveries(ctx))
        for headers, body in receiver.requests:       # each under its endpoint's secret
            verified = []
            for secret in (endpoint["secret"], quiet["secret"]):
                try:
                    verified.append(webhooks.verify(secret, headers, body))
                except webhooks.InvalidSignature:
                    pass
            assert len(verified) == 1 and verified[0]["type"] in webhooks.EVENTS
    assert runner.reconcile(ctx).get("deliver_webhooks") is None


# -- delivery ------------------------------------------------------------------------------
def test_signed_delivery_reaches_a_local_receiver(ctx, stream):
    with Receiver() as receiver:
        pid, endpoint = small_project(ctx, receiver.url, stream=stream)
        examples.ingest(ctx, pid, flip(stream, 0, 2))
    assert len(receiver.requests) == 2
    ids = set()
    for (headers, body), example in zip(receiver.requests, items(stream, 0, 2)):
        payload = webhooks.verify(endpoint["secret"], headers, body)
        assert headers["content-type"] == "application/json"
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
        assert payload["type"] == "label.changed"
        assert payload["data"]["project_id"] == pid
        assert payload["data"]["external_id"] == example["external_id"]
        assert payload["data"]["new_label"] == 1 - example["label"]
        ids.add(headers["webhook-id"])
    log = webhooks.list_deliveries(ctx, pid, endpoint["id"])
    assert log["total"] == 2 and [d["id"] for d in log["items"]] == \
        sorted((d["id"] for d in log["items"]), reverse=True)                 # newest first
    assert {d["message_id"] for d in log["items"]} == ids
    assert all(d["status"] == "delivered" and d["attempts"] == 1 and d["response_status"] == 200
               and d["delivered_at"] is not None and d["last_error"] is None
               for d in log["items"])
    page = webhooks.list_deliveries(ctx, pid, endpoint["id"], offset=1, limit=1)
    assert page["total"] == 2 and [d["id"] for d in page["items"]] == [log["items"][1]["id"]]


def test_a_failed_delivery_is_retried_with_backoff(ctx, stream):
    with Receiver(statuses=(500, 200)) as receiver:
        pid, endpoint = small_project(ctx, receiver.url, stream=stream)
        examples.ingest(ctx, pid, flip(stream, 0, 1))
        [d] = deliveries(ctx)
        assert (d.status, d.attempts, d.response_status) == ("pending", 1, 500)
        assert d.last_error.startswith("HTTP 500")
        wait = (d.next_attempt_at - utcnow()).total_seconds()
        assert 0 < wait <= webhooks.BACKOFF_SECONDS[0]
        assert runner.reconcile(ctx) == {}                            # not due yet
        assert webhooks.deliver_webhooks(ctx, pid) == {"delivered": 0, "retrying": 0,
                                                         "failed": 0}
        later = utcnow() + timedelta(seconds=webhooks.BACKOFF_SECONDS[0] + 1)
        assert webhooks.deliver_webhooks(ctx, pid, now=later)["delivered"] == 1
    [d] = deliveries(ctx)
    assert (d.status, d.attempts, d.response_status, d.last_error) == \
        ("delivered", 2, 200, None)
    (h1, b1), (h2, b2) = receiver.requests
    assert h1["webhook-id"] == h2["webhook-id"] == d.message_id      # stable across retries
    assert b1 == b2
    webhooks.verify(endpoint["secret"], h2, b2)


def test_backoff_grows_is_capped_and_gives_up(ctx, stream, monkeypatch):
    assert [webhooks.backoff_seconds(n) for n in (1, 2, 3, 4, 5, 6, 9)] == \
        [5, 30, 120, 600, 1800, 3600, 3600]
    monkeypatch.setattr(webhooks, "BACKOFF_SECONDS", (0.0,))
    monkeypatch.setattr(webhooks, "MAX_ATTEMPTS", 3)
    with Receiver(statuses=(503,)) as receiver:
        pid, _ = small_project(ctx, receiver.url, stream=stream)
        examples.ingest(ctx, pid, flip(stream, 0, 1))              # attempt 1, inline
        assert runner.reconcile(ctx) == {"deliver_webhooks": 1}       # attempt 2, inline
        assert webhooks.deliver_webhooks(ctx, pid) == {"delivered": 0, "retrying": 0,
                                                         "failed": 1}
        assert runner.reconcile(ctx) == {}
    [d] = deliveries(ctx)
    assert (d.status, d.attempts, d.response_status) == ("failed", 3, 503)
    assert len(receiver.requests) == 3


def test_a_receiver_that_is_down_or_slow_never_blocks_the_request(tmp_path, stream,
                                                                   monkeypatch):
    # Down: the request succeeds, the delivery waits for its retry.
    ctx = make_context(tmp_path / "down")
    pid, _ = small_project(ctx, closed_port_url(), stream=stream)
    result = examples.ingest(ctx, pid, flip(stream, 0, 1))
    assert result[0]["outcome"] == "updated"
    [d] = deliveries(ctx)
    assert d.status == "pending" and d.attempts == 1 and d.response_status is None
    assert "ConnectionError" in d.last_error

    # Slow: with a real dispatcher the request only commits the outbox row.
    monkeypatch.setattr(webhooks, "TIMEOUT_SECONDS", 0.3)
    ctx = make_context(tmp_path / "slow", dispatcher=None)
    submitted = []

    class Recording(NullDispatcher):
        def submit(self, submission):
            submitted.append((submission.job.name, *submission.values))

    ctx.set_dispatcher(Recording())
    with Receiver(delay=1.0) as receiver:
        pid, endpoint = small_project(ctx, receiver.url, stream=stream)
        started = time.perf_counter()
        examples.ingest(ctx, pid, flip(stream, 0, 1))
        assert time.perf_counter() - started < 0.9
        assert submitted == [("deliver_webhooks", pid)]
        [d] = deliveries(ctx)
        assert d.status == "pending" and d.attempts == 0
        assert webhooks.deliver_webhooks(ctx, pid) == {"delivered": 0, "retrying": 1,
                                                         "failed": 0}
    [d] = deliveries(ctx)
    assert d.attempts == 1 and "Timeout" in d.last_error


def test_two_workers_never_send_the_same_delivery(tmp_path, stream):
    ctx = make_context(tmp_path, dispatcher=None)
    with Receiver(delay=0.02) as receiver:
        pid, endpoint = small_project(ctx, receiver.url, n=12, stream=stream)
        examples.ingest(ctx, pid, flip(stream, 0, 12))
        assert len(deliveries(ctx)) == 12
        results, errors = [], []

        def worker():
            try:
                results.append(webhooks.deliver_webhooks(ctx, pid))
            except Exception as exc:           # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert not errors
    assert sum(r["delivered"] for r in results) == 12
    ids = [h["webhook-id"] for h, _ in receiver.requests]
    assert len(ids) == len(set(ids)) == 12
    assert all(d.status == "delivered" and d.attempts == 1 for d in deliveries(ctx))


def test_a_deactivated_endpoint_gets_nothing(ctx, stream):
    pid, endpoint = small_project(ctx, closed_port_url(), stream=stream)
    ctx.set_dispatcher(NullDispatcher())
    examples.ingest(ctx, pid, flip(stream, 0, 1))
    webhooks.delete_endpoint(ctx, pid, endpoint["id"])
    [d] = deliveries(ctx)
    assert d.status == "failed" and d.last_error == "endpoint deactivated"
    examples.ingest(ctx, pid, flip(stream, 1, 2))
    assert len(deliveries(ctx)) == 1
    assert runner.reconcile(ctx) == {}

"""CincerClient: error parsing, batching, retries, 204s, against a fake session and a tiny
local HTTP server."""
import json

import numpy as np
import pytest
import requests

from clients.client import ApiError, CincerClient, IngestError

from .fake_service import TOKEN, start_fake_service


class FakeResponse:
    def __init__(self, status, body=None, text=None, reason="Reason"):
        self.status_code = status
        self.reason = reason
        self._body = body
        self.text = text if text is not None else ("" if body is None else json.dumps(body))
        self.content = self.text.encode()

    def json(self):
        if self._body is None:
            return json.loads(self.text)      # raises ValueError on non-JSON
        return self._body


class FakeSession:
    """Answers from a script: each entry a FakeResponse or an exception to raise."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = []

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        outcome = self.script.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def client_with(script, **kwargs):
    session = FakeSession(script)
    return CincerClient("http://svc:1/api/v1/", "tok", session=session, backoff=0,
                        **kwargs), session


def test_error_shape_is_parsed():
    body = {"error": {"code": "bad_input", "message": "invalid items",
                      "details": {"items.0.x": ["shape [3] does not match"]}}}
    client, _ = client_with([FakeResponse(422, body)])
    with pytest.raises(ApiError) as info:
        client.get_project(7)
    err = info.value
    assert (err.status, err.code, err.message) == (422, "bad_input", "invalid items")
    assert err.details == {"items.0.x": ["shape [3] does not match"]}


def test_non_json_error_keeps_status_and_text():
    client, _ = client_with([FakeResponse(502, text="<html>Bad Gateway</html>",
                                          reason="Bad Gateway")])
    with pytest.raises(ApiError) as info:
        client.stats(1)
    assert info.value.status == 502 and info.value.code == "http_502"
    assert "Bad Gateway" in info.value.message and info.value.details == {}


def test_urls_headers_and_params():
    client, session = client_with([FakeResponse(200, {"items": [], "total": 0})])
    client.list_examples(3, status="suspicious", offset=10, limit=5)
    method, url, kwargs = session.calls[0]
    assert method == "GET" and url == "http://svc:1/api/v1/projects/3/examples"
    assert kwargs["params"] == {"status": "suspicious", "offset": 10, "limit": 5}
    assert kwargs["headers"]["Authorization"] == "Bearer tok"
    assert kwargs["timeout"] == 30


def test_next_query_204_is_none():
    client, session = client_with([FakeResponse(204)])
    assert client.next_query(2) is None
    assert session.calls[0][:2] == ("POST", "http://svc:1/api/v1/projects/2/queries/next")


def test_ingest_splits_into_batches_and_converts_arrays():
    items = [{"x": np.full((2, 2), i, dtype=np.float32), "label": np.int64(i % 3),
              "external_id": str(i)} for i in range(1234)]
    responses = [FakeResponse(202, {"items": [{"id": i, "status": "pending"}
                                              for i in range(a, b)]})
                 for a, b in ((0, 500), (500, 1000), (1000, 1234))]
    client, session = client_with(responses)
    seen = []
    result = client.ingest(1, items, progress=seen.append)
    assert [len(c[2]["json"]["items"]) for c in session.calls] == [500, 500, 234]
    assert seen == [500, 500, 234]
    assert [r["id"] for r in result] == list(range(1234))
    first = session.calls[0][2]["json"]["items"][1]
    assert first == {"x": [[1.0, 1.0], [1.0, 1.0]], "label": 1, "external_id": "1"}
    json.dumps(session.calls[2][2]["json"])        # plain JSON types only


def test_refused_batch_reports_what_was_stored():
    ok = FakeResponse(202, {"items": [{"id": i, "status": "pending"} for i in range(3)]})
    bad = FakeResponse(400, {"error": {"code": "bad_input", "message": "NaN",
                                       "details": {"items.1.x": ["NaN"]}}})
    client, session = client_with([ok, bad])
    items = [{"x": [0.0], "label": 0}] * 5
    with pytest.raises(IngestError) as info:
        client.ingest(1, items, batch_size=3)
    assert info.value.offset == 3 and len(info.value.stored) == 3
    assert info.value.status == 400 and info.value.details == {"items.1.x": ["NaN"]}
    assert len(session.calls) == 2


def test_gets_are_retried_on_connection_errors_posts_are_not():
    client, session = client_with([requests.ConnectionError("refused"),
                                   requests.Timeout("slow"),
                                   FakeResponse(200, {"examples": {}})], retries=3)
    assert client.stats(1) == {"examples": {}}
    assert len(session.calls) == 3

    client, session = client_with([requests.ConnectionError("refused")] * 3, retries=2)
    with pytest.raises(requests.ConnectionError):
        client.get_project(1)
    assert len(session.calls) == 3                  # one try + two retries, bounded

    client, session = client_with([requests.ConnectionError("refused")], retries=5)
    with pytest.raises(requests.ConnectionError):
        client.next_query(1)
    assert len(session.calls) == 1                  # leasing changes state: no retry


def test_answers_carry_an_idempotency_key_and_are_retried_with_it():
    answered = {"id": 4, "status": "answered"}
    client, session = client_with([requests.Timeout("slow"), FakeResponse(200, answered)],
                                  retries=2)
    assert client.answer_query(1, 4, "a", counterexample_not_sure=True) == answered
    keys = [kwargs["headers"]["Idempotency-Key"] for _, _, kwargs in session.calls]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]    # the retry: the same key
    client, session = client_with([FakeResponse(200, answered)] * 2)
    client.answer_query(1, 4, "a", counterexample_not_sure=True)
    client.answer_query(1, 4, "a", counterexample_not_sure=True, idempotency_key="mine")
    first, second = (kwargs["headers"]["Idempotency-Key"] for _, _, kwargs in session.calls)
    assert first != keys[0] and second == "mine"            # a new call: a new key


def test_http_errors_are_not_retried():
    client, session = client_with([FakeResponse(500, {"error": {"code": "internal",
                                                                "message": "x"}})])
    with pytest.raises(ApiError):
        client.stats(1)
    assert len(session.calls) == 1


def test_is_idle():
    idle = {"examples": {"pending": 0, "accepted": 5}, "queries": {"computing": 0, "open": 3},
            "retrain_wanted": False}
    assert CincerClient.is_idle(idle)
    assert not CincerClient.is_idle({**idle, "retrain_wanted": True})
    assert not CincerClient.is_idle({**idle, "examples": {"pending": 1}})
    assert not CincerClient.is_idle({**idle, "queries": {"computing": 2}})


@pytest.fixture
def fake():
    server, service, url = start_fake_service()
    yield service, url
    server.shutdown()
    server.server_close()


def test_round_trip_against_a_local_server(fake):
    service, url = fake
    client = CincerClient(url, TOKEN, timeout=5)
    assert client.healthz() == {"status": "ok"}
    result = client.ingest(1, [{"x": [[0, 0], [0, 0]], "label": label, "external_id": str(i)}
                               for i, label in enumerate([0, 1, 2, 2])], batch_size=3)
    assert [r["status"] for r in result] == ["accepted", "accepted", "suspicious", "suspicious"]
    assert sum(1 for m, p, _ in service.requests if p.endswith("/examples")) == 2
    query = client.next_query(1)
    assert query["example"]["id"] == 3 and query["counterexample"]["id"] == 1
    client.answer_query(1, query["id"], 1, 0)
    with pytest.raises(ApiError) as info:
        client.answer_query(1, query["id"], 1, 0)   # the fake treats replays as lost leases
    assert info.value.status == 409 and info.value.code == "conflict"
    assert [e["id"] for e in client.iter_examples(1, page_size=3)] == [1, 2, 3, 4]
    assert client.export(1, "csv").splitlines()[3] == "3,1"

    with pytest.raises(ApiError) as info:
        CincerClient(url, "wrong", timeout=5).stats(1)
    assert (info.value.status, info.value.code) == (401, "unauthorized")
    with pytest.raises(ApiError) as info:
        client.get_project(9)
    assert info.value.status == 404 and info.value.details == {"project_id": 9}


def test_admin_methods_send_the_right_requests(fake):
    service, url = fake
    client = CincerClient(url, TOKEN)
    assert client.update_project(1, {"threshold": 0.3})["threshold"] == 0.3
    assert service.requests[-1] == ("PATCH", "/api/v1/projects/1", {"threshold": 0.3})
    assert client.project_history(1)[0]["changes"]["threshold"]["new"] == 0.3
    token = client.create_token(1, "viewer")
    assert client.list_tokens(1)[0]["id"] == token["id"]
    assert client.revoke_token(1, token["id"]) is None
    assert client.list_audits(1) == {"items": [], "total": 0}
    x = [[0.0, 1.0], [2.0, 3.0]]
    client.ingest(1, [{"x": x, "label": 0}, {"x": x, "label": 2}])
    query = client.next_query(1)
    client.answer_query(1, query["id"], np.int64(2), "b")          # index or class name
    assert service.requests[-1][2] == {"example_label": 2, "counterexample_label": "b"}
    assert client.list_queries(1, status="answered")["total"] == 1
    assert client.delete_project(1) is None
    assert service.requests[-1][:2] == ("DELETE", "/api/v1/projects/1")
    with pytest.raises(ApiError) as caught:
        client.get_project(1)
    assert caught.value.status == 404

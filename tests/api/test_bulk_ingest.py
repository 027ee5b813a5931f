"""Bulk ingest: the fast paths (orjson parsing, the plain-items schema path, the plain
results) against the slow, obviously correct ones, MessagePack bodies, and one batch's rows
and history as stored."""
import json

import marshmallow as ma
import msgpack
import pytest
from marshmallow import fields

from api.errors import InvalidBody
from api.examples.schemas import ExampleInSchema, IngestedItems, IngestedWithVerdictSchema, IngestItems
from api.fields import strict_json_loads
from api.requests import parse_json_body

from .conftest import ADMIN, assert_error, batch, bearer

ROW = [0.5, -1.25, 3, 0.0]
ITEMS_CASES = {
    "plain": [{"external_id": "a", "x": ROW, "label": 1, "source": "s", "split": "training"},
              {"x": ROW, "label": "cat"}],
    "bool in x": [{"x": [True, 1.5, 2.0, 3.0], "label": 0}],
    "string in x": [{"x": ["1.0", 1, 2, 3], "label": 0}],
    "empty x": [{"x": [], "label": 0}],
    "nested x": [{"x": [[1, 2], [3, 4]], "label": 0}],
    "huge number": [{"x": [1e39, 0, 0, 0], "label": 0}],
    "huge integer": [{"x": [10**400, 0, 0, 0], "label": 0}],
    "unknown key": [{"x": ROW, "label": 0, "colour": "red"}],
    "numeric external id": [{"external_id": 7, "x": ROW, "label": 0}],
    "long external id": [{"external_id": "e" * 201, "x": ROW, "label": 0}],
    "control character": [{"external_id": "a\x07b", "x": ROW, "label": 0}],
    "source to strip": [{"x": ROW, "label": 0, "source": "  web  "}],
    "blank source": [{"x": ROW, "label": 0, "source": "   "}],
    "null split": [{"x": ROW, "label": 0, "split": None}],
    "bad split": [{"x": ROW, "label": 0, "split": "test"}],
    "bool label": [{"x": ROW, "label": True}],
    "label out of range": [{"x": ROW, "label": 2**31}],
    "empty label": [{"x": ROW, "label": ""}],
    "not an object": [[1, 2, 3]],
    "one odd item": [{"x": ROW, "label": 0}, {"x": ROW, "label": 0, "text": "hello"}],
}


def _load(field, value):
    try:
        return "ok", field.deserialize(value)
    except ma.ValidationError as exc:
        return "error", exc.messages


@pytest.mark.parametrize("case", sorted(ITEMS_CASES))
def test_items_fast_path_loads_what_the_schema_loads(case):
    fast = IngestItems(fields.Nested(ExampleInSchema))
    slow = fields.List(fields.Nested(ExampleInSchema))
    value = ITEMS_CASES[case]
    assert _load(fast, value) == _load(slow, value)


@pytest.mark.parametrize("results", [
    [{"id": 1, "status": "pending", "outcome": "created"}],
    [{"id": 2, "status": "accepted", "outcome": "replayed"}, {"id": 3, "status": "pending",
                                                             "outcome": "updated"}],
    [{"id": 4, "status": "pending", "outcome": "created", "verdict": "pending",
      "reason": None, "margin": None, "prediction": None, "prediction_name": None,
      "probabilities": None, "query": None}],
])
def test_results_fast_path_dumps_what_the_schema_dumps(results):
    fast = IngestedItems(fields.Nested(IngestedWithVerdictSchema))
    slow = fields.List(fields.Nested(IngestedWithVerdictSchema))
    assert fast.serialize("items", {"items": results}) == slow.serialize("items",
                                                                          {"items": results})


@pytest.mark.parametrize("raw", [
    b'{"items": [{"x": [1.5, -2e-3, 0], "label": "a"}]}', b'{"a": 1, "a": 2}', b'[1e308]',
    b'12345678901234567890123', b'{"id": 9223372036854775808}', b'[0.1234567890123456789]',
    b'"caf\\u00e9"', b'"\\ud83d\\ude00"', b'"\\ud800"', b'{"x": NaN}', b'[Infinity]',
    b'[1e400]', b'[1,]', b'{"a": 1', b'\xff\xfe', b'', b'  [1, 2]  ',
    b'[-12345678901234567890]', b'[0.5,12345678901234567890]', b'[12345678901234567890.25]',
    b'[0.0012345678901234567, 1.0000000000000000000001e5]', b'[1e0000000000000000000002]',
])
def test_orjson_reads_what_the_standard_library_reads(raw):
    try:
        expected = ("ok", strict_json_loads(raw))
    except (ValueError, UnicodeDecodeError):
        expected = ("error", None)
    try:
        got = ("ok", parse_json_body(raw))
    except InvalidBody:
        got = ("error", None)
    assert got == expected
    if got[0] == "ok":       # the same types too: 12345678901234567890123 stays an integer
        assert json.dumps(got[1]) == json.dumps(expected[1])


def test_floats_with_long_fractions_take_the_fast_path(monkeypatch):
    """Python writes many floats with 19+ digits after the point (0.0012345678901234567): they
    are never integers, so orjson reads them; the standard library is never called."""
    import api.requests

    def refuse(text):
        raise AssertionError("the slow path read a body orjson reads the same")
    monkeypatch.setattr(api.requests, "strict_json_loads", refuse)
    raw = json.dumps({"items": [{"x": [0.0012345678901234567, -0.00098765432109876543, 1e-7],
                                 "label": 12}]}).encode()
    assert parse_json_body(raw) == json.loads(raw)


def test_long_integers_still_take_the_slow_path(monkeypatch):
    import api.requests
    called = []
    monkeypatch.setattr(api.requests, "strict_json_loads",
                        lambda text: called.append(text) or strict_json_loads(text))
    for raw in (b'12345678901234567890', b'[0.5, -12345678901234567890]'):
        assert json.dumps(parse_json_body(raw)) == json.dumps(json.loads(raw))
    assert len(called) == 2


def _examples(client, pid):
    page = client.get(f"/api/v1/projects/{pid}/examples?limit=500", headers=bearer(ADMIN))
    assert page.status_code == 200
    return page.get_json()


def test_a_batch_is_stored_in_order_with_its_history(client, project, breast):
    pid = project["id"]
    body = batch(breast, 0, 150)
    stored = client.post(f"/api/v1/projects/{pid}/examples", json=body, headers=bearer(ADMIN))
    assert stored.status_code == 202, stored.get_json()
    items = stored.get_json()["items"]
    ids = [item["id"] for item in items]
    assert ids == sorted(ids) and len(set(ids)) == 150
    assert [i["outcome"] for i in items] == ["created"] * 150
    by_id = {e["id"]: e for e in _examples(client, pid)["items"]}
    for item, sent in zip(items, body["items"]):
        example = by_id[item["id"]]
        assert example["external_id"] == sent["external_id"]
        assert example["label"] == sent["label"] and example["source"] == "test"
        assert example["x"] == pytest.approx(sent["x"], rel=1e-6)
    detail = client.get(f"/api/v1/projects/{pid}/examples/{ids[-1]}", headers=bearer(ADMIN))
    [event] = detail.get_json()["history"]
    assert (event["why"], event["old_label"], event["new_label"]) == (
        "ingest", None, body["items"][-1]["label"])
    # The same batch again replays; nothing new is stored.
    again = client.post(f"/api/v1/projects/{pid}/examples", json=body, headers=bearer(ADMIN))
    assert [i["outcome"] for i in again.get_json()["items"]] == ["replayed"] * 150
    assert _examples(client, pid)["total"] == 150


def post_msgpack(client, pid, value, raw=None):
    return client.post(f"/api/v1/projects/{pid}/examples",
                       data=msgpack.packb(value) if raw is None else raw,
                       content_type="application/msgpack", headers=bearer(ADMIN))


def test_a_msgpack_batch_is_stored_as_its_json_twin(client, project, breast):
    pid = project["id"]
    body = batch(breast, 0, 20)
    answer = post_msgpack(client, pid, body)
    assert answer.status_code == 202, answer.get_json()
    replay = client.post(f"/api/v1/projects/{pid}/examples", json=body, headers=bearer(ADMIN))
    assert [i["outcome"] for i in replay.get_json()["items"]] == ["replayed"] * 20


@pytest.mark.parametrize("case", ["undecodable", "trailing bytes", "binary", "extension",
                                  "wrong length", "too many", "integer keys"])
def test_bad_msgpack_bodies_store_nothing(client, project, breast, case):
    pid = project["id"]
    body = batch(breast, 0, 3)
    raw, status = None, 400
    if case == "undecodable":
        raw = b"\xc1\xc1\xc1"
    elif case == "trailing bytes":
        raw = msgpack.packb(body) + b"\x01"
    elif case == "binary":
        body["items"][0]["external_id"] = b"\x00\x01"
    elif case == "extension":
        body["items"][0]["label"] = msgpack.ExtType(1, b"x")
        raw = msgpack.packb(body)
    elif case == "wrong length":
        body["items"][1]["x"] = body["items"][1]["x"][:-1]
        status = 422
    elif case == "too many":
        body = batch(breast, 0, 201)        # the fixture's max_batch is 200
        status = 422
    elif case == "integer keys":
        raw = msgpack.packb({1: "a", "items": body["items"]}, strict_types=False)
    assert_error(post_msgpack(client, pid, body, raw), status)
    assert _examples(client, pid)["total"] == 0


def test_other_content_types_are_refused(client, project):
    answer = client.post(f"/api/v1/projects/{project['id']}/examples", data=b"x=1",
                         content_type="application/x-www-form-urlencoded",
                         headers=bearer(ADMIN))
    error = assert_error(answer, 415)
    assert "application/msgpack" in error["message"]

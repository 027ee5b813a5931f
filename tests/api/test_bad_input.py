"""Bad input gets a 4xx in the JSON error shape and stores nothing."""
import pytest

from cincer_service.service import reports

from .conftest import ADMIN, assert_error, batch, bearer


def examples_url(pid):
    return f"/api/v1/projects/{pid}/examples"


def stored(client, pid):
    return client.get(examples_url(pid), headers=bearer(ADMIN)).get_json()["total"]


def with_item(breast, **changes):
    body = batch(breast, 0, 3)
    body["items"].append({**body["items"][0], "external_id": "bad", **changes})
    return body


@pytest.mark.parametrize("case", ["wrong shape", "nested wrong shape", "unknown label",
                                  "negative label", "string label", "bool label",
                                  "string x", "missing x", "missing label", "empty batch",
                                  "oversized batch", "items not a list", "unknown field"])
def test_invalid_batches_are_refused_whole(client, project, breast, case):
    pid, token = project["id"], project["tokens"]["ingest"]
    bodies = {
        "wrong shape": with_item(breast, x=[0.5] * 29),
        "nested wrong shape": with_item(breast, x=[[0.5] * 30]),
        "unknown label": with_item(breast, label=2),
        "negative label": with_item(breast, label=-1),
        "string label": with_item(breast, label="1"),
        "bool label": with_item(breast, label=True),
        "string x": with_item(breast, x=["0.5"] * 30),
        "missing x": {"items": [{"label": 0}]},
        "missing label": {"items": [{"x": [0.5] * 30}]},
        "empty batch": {"items": []},
        "oversized batch": {"items": batch(breast, 0, 201)["items"]},
        "items not a list": {"items": {"x": [0.5] * 30, "label": 0}},
        "unknown field": {"items": batch(breast, 0, 2)["items"], "extra": 1},
    }
    error = assert_error(client.post(examples_url(pid), json=bodies[case],
                                     headers=bearer(token)), 422)
    assert error["details"], case
    assert stored(client, pid) == 0


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(client, project, raw):
    pid, token = project["id"], project["tokens"]["ingest"]
    x = ", ".join(["0.5"] * 29 + [raw])
    response = client.post(examples_url(pid), data=f'{{"items": [{{"x": [{x}], "label": 0}}]}}',
                           headers={**bearer(token), "Content-Type": "application/json"})
    error = assert_error(response, 400, "invalid_json")
    assert raw.lstrip("-") in error["message"]
    assert stored(client, pid) == 0


@pytest.mark.parametrize("data,content_type", [
    ('{"items": [', "application/json"),
    ("\xff\xfe not utf-8", "application/json"),
])
def test_malformed_json_is_400(client, project, data, content_type):
    pid, token = project["id"], project["tokens"]["ingest"]
    body = data.encode("latin-1")
    response = client.post(examples_url(pid), data=body,
                           headers={**bearer(token), "Content-Type": content_type})
    assert_error(response, 400)
    assert stored(client, pid) == 0


def test_json_that_is_not_an_object_is_422(client, project):
    pid, token = project["id"], project["tokens"]["ingest"]
    assert_error(client.post(examples_url(pid), json=[1, 2], headers=bearer(token)), 422)


def test_unknown_project_route_and_method(client, breast):
    assert_error(client.post(examples_url(404), json=batch(breast, 0, 2),
                             headers=bearer(ADMIN)), 404)
    assert_error(client.get("/api/v1/no/such/route", headers=bearer(ADMIN)), 404, "not_found")
    error = assert_error(client.delete("/api/v1/projects", headers=bearer(ADMIN)), 405,
                         "method_not_allowed")
    assert "GET" in error["details"]["allowed"]


def test_oversized_body_is_413(service, breast):
    from api import create_app
    small = create_app(service=service, config={"TESTING": True, "MAX_CONTENT_LENGTH": 2000})
    client = small.test_client()
    pid = client.post("/api/v1/projects", headers=bearer(ADMIN), json={
        "name": "p", "classes": ["a", "b"], "input_shape": [30]}).get_json()["id"]
    error = assert_error(client.post(examples_url(pid), json=batch(breast, 0, 50),
                                     headers=bearer(ADMIN)), 413, "payload_too_large")
    assert error["details"]["max_content_length"] == 2000
    assert stored(client, pid) == 0


@pytest.mark.parametrize("spec,field", [
    ({"classes": ["only-one"]}, "classes"),
    ({"input_shape": [0]}, "input_shape"),
    ({"input_shape": [2, 2, 2, 2]}, "input_shape"),
    ({"threshold": 1.5}, "threshold"),
    ({"strategy": "psychic"}, "strategy"),
    ({"model": {"kind": "transformer"}}, "model"),
    ({"retrain": {"mode": "sometimes"}}, "retrain"),
    ({"bootstrap_size": 1}, "bootstrap_size"),
    # Found by fuzzing: each of these was a 500 from the database.
    ({"bootstrap_size": 11721833911}, "bootstrap_size"),
    ({"model": {"kind": "fc", "seed": 2**40}}, "model"),
    ({"name": "nul\u0000name"}, "name"),
    ({"classes": ["a", "b\u0000"]}, "classes"),
    ({"classes": ["a", "a"]}, "classes"),
    ({"name": "   "}, "name"),
    ({"input_shape": [100000, 100000]}, "input_shape"),
    ({"model": {"kind": "cnn"}}, "model"),
])
def test_invalid_project_specs(client, spec, field):
    body = {"name": "p", "classes": ["a", "b"], "input_shape": [4], **spec}
    error = assert_error(client.post("/api/v1/projects", json=body, headers=bearer(ADMIN)), 422,
                         "validation_error")
    assert any(key == field or key.startswith(field + ".") for key in error["details"]), error
    assert client.get("/api/v1/projects", headers=bearer(ADMIN)).get_json()["items"] == []


def test_invalid_query_parameters(client, project):
    pid = project["id"]
    for query in ("status=lost", "limit=0", "offset=-1", "limit=many"):
        assert_error(client.get(f"{examples_url(pid)}?{query}", headers=bearer(ADMIN)), 422)
    assert_error(client.get(f"/api/v1/projects/{pid}/export?format=xml",
                            headers=bearer(ADMIN)), 422)


def test_unexpected_errors_are_500_without_a_traceback(client, project, service, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internal detail")
    monkeypatch.setattr(reports, "stats", explode)
    error = assert_error(client.get(f"/api/v1/projects/{project['id']}/stats",
                                    headers=bearer(ADMIN)), 500, "internal_error")
    assert "secret" not in error["message"]


def test_out_of_range_and_control_characters_are_422(client, project):
    """Found by fuzzing on PostgreSQL: these reached the database and came back as 500s."""
    pid = project["id"]
    for query in ("offset=99999999999999999999", "limit=100000"):
        assert_error(client.get(f"{examples_url(pid)}?{query}", headers=bearer(ADMIN)), 422)
    error = assert_error(client.post(f"/api/v1/projects/{pid}/tokens",
                                     json={"role": "viewer", "name": "a\u0000b"},
                                     headers=bearer(ADMIN)), 422)
    assert "name" in error["details"]
    item = {"x": [0.0] * 30, "label": 0, "external_id": "x\u0000", "source": "s\u0000"}
    error = assert_error(client.post(examples_url(pid), json={"items": [item]},
                                     headers=bearer(ADMIN)), 422)
    assert set(error["details"]) == {"items.0.external_id", "items.0.source"}


def test_huge_invalid_batch_gives_flat_details(client, project):
    """A batch far over the limit whose items also fail: details mixed int and str keys
    and broke the JSON encoder (500). Details now use flat dotted keys only."""
    items = [{"x": "not numbers", "label": -1}] * 21_564
    error = assert_error(client.post(examples_url(project["id"]), json={"items": items},
                                     headers=bearer(ADMIN)), 422, "validation_error")
    assert all(isinstance(key, str) for key in error["details"])
    assert "items.0.x" in error["details"] and "items.21563.label" in error["details"]
    assert stored(client, project["id"]) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_is_415(client, project, content_type):
    answer = client.post(examples_url(project["id"]), data='{"items": []}',
                         headers={**bearer(ADMIN), "Content-Type": content_type})
    assert_error(answer, 415, "unsupported_media_type")
    assert stored(client, project["id"]) == 0

"""The edge check every JSON body goes through (``api.requests.check_json_body``), and the
input errors that used to be 500s or confusing answers (issue 24 §5, issue 19 §3).

The first tests are parametrised over every body-taking operation of the app's own OpenAPI
document, so an operation added later is covered without editing this file.
"""
from __future__ import annotations

import json
import tempfile

import pytest
import sqlalchemy as sa

from api.requests import MAX_JSON_DEPTH

from .conftest import ADMIN, assert_error, bearer

LONE = "ok\ud800end"                     # a lone high surrogate inside ordinary text
JSON_HEADERS = {**bearer(ADMIN), "Content-Type": "application/json"}


def _openapi() -> dict:
    """The OpenAPI document, as ``/api/v1/openapi.json`` serves it (read at collection)."""
    from api import create_app
    from cincer_service.service import Settings, build_context
    with tempfile.TemporaryDirectory() as tmp:
        ctx = build_context(Settings(data_dir=tmp))
        try:
            app = create_app(service=ctx, config={"TESTING": True})
            return app.test_client().get("/api/v1/openapi.json").get_json()
        finally:
            ctx.store.engine.dispose()


SPEC = _openapi()
BODY_OPERATIONS = sorted((method.upper(), path) for path, item in SPEC["paths"].items()
                         for method, op in item.items()
                         if method in ("post", "put", "patch") and isinstance(op, dict))
OPERATION_IDS = [f"{method} {path}" for method, path in BODY_OPERATIONS]
WITH_SCHEMA = [op for op in BODY_OPERATIONS
               if "requestBody" in SPEC["paths"][op[1]][op[0].lower()]]


def test_the_operation_lists_come_from_the_document():
    """The parametrisation is not vacuous: the known body-taking operations are in it."""
    assert ("POST", "/api/v1/projects") in WITH_SCHEMA
    assert ("PATCH", "/api/v1/projects/{pid}") in WITH_SCHEMA
    assert ("POST", "/api/v1/projects/{pid}/examples") in WITH_SCHEMA
    assert len(WITH_SCHEMA) >= 10 and len(BODY_OPERATIONS) > len(WITH_SCHEMA)


def _resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _takes_text(schema: dict) -> bool:
    return schema.get("type") == "string" or any(
        option.get("type") == "string" for option in schema.get("oneOf", []))


def surrogate_body(schema: dict, path: tuple = ()):
    """``(body, paths)``: a body with ``LONE`` in every string field of ``schema`` (arrays
    get one element) and the dotted paths of those fields; ``(None, [])`` if none."""
    schema = _resolve(schema)
    if _takes_text(schema):
        return LONE, [".".join(map(str, path))]
    if schema.get("type") == "array" and schema.get("items"):
        value, paths = surrogate_body(schema["items"], path + (0,))
        return ([value], paths) if paths else (None, [])
    if schema.get("type") == "object" or "properties" in schema:
        body, paths = {}, []
        for name, inner in schema.get("properties", {}).items():
            value, inner_paths = surrogate_body(inner, path + (name,))
            if inner_paths:
                body[name], paths = value, paths + inner_paths
        return (body, paths) if paths else (None, [])
    return None, []


def request_schema(method: str, path: str) -> dict | None:
    body = SPEC["paths"][path][method.lower()].get("requestBody")
    return body["content"]["application/json"]["schema"] if body else None


def url_for(path: str, pid: int) -> str:
    """The operation's URL with the project's id and 1 for the other ids (in range: the
    edge check answers before any view looks them up)."""
    url = path.replace("{pid}", str(pid))
    for name in ("qid", "aid", "tid", "wid", "eid"):
        url = url.replace("{" + name + "}", "1")
    assert "{" not in url, url
    return url


def row_counts(service) -> dict:
    """Rows per table: "nothing was stored" is these not changing."""
    engine = service.store.engine
    with engine.connect() as connection:
        return {table: connection.execute(sa.text(f'SELECT COUNT(*) FROM "{table}"')).scalar()
                for table in sa.inspect(engine).get_table_names()}


@pytest.mark.parametrize("method,path", BODY_OPERATIONS, ids=OPERATION_IDS)
def test_a_lone_surrogate_in_every_string_field_is_422_naming_it(client, service, project,
                                                                  method, path):
    schema = request_schema(method, path)
    body, paths = surrogate_body(schema) if schema else (None, [])
    if not paths:                     # no string field (or no body documented): add one
        body, paths = {"note": LONE}, ["note"]
    before = row_counts(service)
    response = client.open(url_for(path, project["id"]), method=method,
                           data=json.dumps(body), headers=JSON_HEADERS)
    error = assert_error(response, 422, "validation_error")
    assert set(error["details"]) == set(paths), (paths, error)
    assert all("surrogate" in messages[0] for messages in error["details"].values()), error
    assert min(paths) in error["message"]
    assert row_counts(service) == before


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5000])
@pytest.mark.parametrize("method,path", BODY_OPERATIONS, ids=OPERATION_IDS)
def test_a_body_nested_too_deep_is_400(client, service, project, method, path, depth):
    before = row_counts(service)
    raw = '{"items": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"
    response = client.open(url_for(path, project["id"]), method=method, data=raw,
                           headers=JSON_HEADERS)
    error = assert_error(response, 400, "too_deep")
    assert str(MAX_JSON_DEPTH) in error["message"]
    assert error["details"] == {"max_depth": MAX_JSON_DEPTH}
    assert row_counts(service) == before


def test_nesting_up_to_the_limit_reaches_the_schema(client):
    """A body exactly ``MAX_JSON_DEPTH`` levels deep passes the edge: the schema judges it."""
    raw = '{"name": ' + "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1) + "}"
    error = assert_error(client.post("/api/v1/projects", data=raw, headers=JSON_HEADERS), 422,
                         "validation_error")
    assert "name" in error["details"]


def test_a_lone_surrogate_in_a_key_is_422(client, project):
    body = {"items": [{"x": [0.0] * 30, "label": 0, "note\ud800": 1}]}
    error = assert_error(client.post(f"/api/v1/projects/{project['id']}/examples",
                                     data=json.dumps(body), headers=JSON_HEADERS), 422)
    assert list(error["details"]) == ["items.0.note\\ud800"], error


def test_surrogate_pairs_are_valid_text(client):
    """The check refuses lone surrogates only: an escaped pair is one ordinary character."""
    raw = '{"name": "emoji \\ud83d\\ude00", "classes": ["a", "b"], "input_shape": [2]}'
    created = client.post("/api/v1/projects", data=raw, headers=JSON_HEADERS)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["name"] == "emoji \U0001F600"


# --- one test per item of issue 19 §3 / issue 24 §5 --------------------------------------

def test_lone_surrogate_in_class_names_and_feature_names_is_not_stored(client):
    """These were accepted and stored."""
    for extra, field in (({"classes": ["a\ud800", "b"]}, "classes.0"),
                         ({"feature_names": ["f", "g\ud800"]}, "feature_names.1")):
        body = {"name": "p", "classes": ["a", "b"], "input_shape": [2], **extra}
        error = assert_error(client.post("/api/v1/projects", data=json.dumps(body),
                                         headers=JSON_HEADERS), 422, "validation_error")
        assert list(error["details"]) == [field]
    assert client.get("/api/v1/projects", headers=bearer(ADMIN)).get_json()["items"] == []


def test_lone_surrogate_in_a_text_projects_text_is_422(client, service):
    """This was a 500 (UnicodeEncodeError while hashing the text into features)."""
    pid = client.post("/api/v1/projects", headers=bearer(ADMIN), json={
        "name": "t", "classes": ["a", "b"], "input_kind": "text"}).get_json()["id"]
    url = f"/api/v1/projects/{pid}/examples"
    before = row_counts(service)
    items = [{"text": "fine", "label": 0}, {"text": LONE, "label": 1, "source": "s\udfff"}]
    error = assert_error(client.post(url, data=json.dumps({"items": items}),
                                     headers=JSON_HEADERS), 422, "validation_error")
    assert set(error["details"]) == {"items.1.text", "items.1.source"}
    assert row_counts(service) == before
    ok = client.post(url, json={"items": [{"text": "fine \u00e9\U0001F600", "label": 0}]},
                     headers=bearer(ADMIN))
    assert ok.status_code == 202, ok.get_json()


def test_json_nested_5000_deep_in_x_is_400(client, project):
    """This was a 500 (RecursionError while decoding)."""
    x = "[" * 5000 + "]" * 5000
    raw = '{"items": [{"x": ' + x + ', "label": 0}]}'
    assert_error(client.post(f"/api/v1/projects/{project['id']}/examples", data=raw,
                             headers=JSON_HEADERS), 400, "too_deep")


@pytest.mark.parametrize("raw,where", [('{"name": ', "line 1, column 10"),
                                       ('{"name": "p",\n "classes": ["a" "b"]}', "line 2")])
def test_invalid_json_is_400_with_a_clear_message(client, raw, where):
    """This answered Werkzeug's "The browser (or proxy) sent a request ..." text."""
    error = assert_error(client.post("/api/v1/projects", data=raw, headers=JSON_HEADERS), 400,
                         "invalid_json")
    assert error["message"].startswith("the body is not valid JSON"), error
    assert where in error["message"] and "browser" not in error["message"]


def test_a_finite_number_too_large_for_float32_is_named_as_such(client, project):
    """``1e300`` is finite: it was called "NaN or infinite"."""
    pid = project["id"]
    body = {"items": [{"x": [0.5] * 29 + [1e300], "label": 0, "external_id": "big"}]}
    error = assert_error(client.post(f"/api/v1/projects/{pid}/examples", json=body,
                                     headers=bearer(ADMIN)), 422, "validation_error")
    assert list(error["details"]) == ["items.0.x"]
    message = error["details"]["items.0.x"][0]
    assert "float32" in message and "1e+300" in message and "NaN" not in message
    assert "items.0.x" in error["message"]


@pytest.mark.parametrize("url,name", [
    ("/api/v1/projects/{huge}", "pid"),
    ("/api/v1/projects/-1", "pid"),
    ("/api/v1/projects/-1/stats", "pid"),
    ("/api/v1/projects/{pid}/queries/{huge}", "qid"),
    ("/api/v1/projects/{pid}/examples/-7", "eid"),
])
def test_an_id_out_of_range_in_the_path_is_a_json_404_naming_it(client, project, url, name):
    """2^70 or -1 answered Flask's generic "URL not found" text."""
    url = url.format(huge=2**70, pid=project["id"])
    error = assert_error(client.get(url, headers=bearer(ADMIN)), 404, "not_found")
    assert list(error["details"]) == [name] and name in error["message"]
    assert "requested URL" not in error["message"]


def test_the_documented_id_range_is_unchanged():
    """The converter matches any integer, but the document still says 0..2^63-1."""
    item = SPEC["paths"]["/api/v1/projects/{pid}"]
    param = (item.get("parameters") or item["get"]["parameters"])[0]
    assert param["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}


def test_422s_have_one_style_whoever_finds_the_problem(client, project):
    """The schema's ("validation_error", "see details") and the service's ("bad_input",
    "1 invalid field(s)") 422s are now one: code, a message naming the fields, details."""
    pid = project["id"]
    from_schema = assert_error(client.post("/api/v1/projects", headers=bearer(ADMIN), json={
        "name": "  ", "classes": ["a", "b"], "input_shape": [2]}), 422)
    item = {"x": [0.5] * 30, "label": 7}              # index out of range: the service says
    from_service = assert_error(client.post(f"/api/v1/projects/{pid}/examples",
                                            json={"items": [item]}, headers=bearer(ADMIN)), 422)
    for error, field in ((from_schema, "name"), (from_service, "items.0.label")):
        assert error["code"] == "validation_error"
        assert list(error["details"]) == [field]
        assert all(isinstance(m, str) for m in error["details"][field])
        assert error["message"].startswith(f"invalid field {field}: "), error
    several = assert_error(client.post("/api/v1/projects", headers=bearer(ADMIN), json={
        "name": "", "classes": "ab", "input_shape": [0]}), 422, "validation_error")
    assert several["message"].startswith("3 invalid fields: ")
    assert all(field in several["message"] for field in ("name", "classes", "input_shape"))


def test_an_integer_external_id_is_refused_not_coerced(client, service, project):
    pid = project["id"]
    before = row_counts(service)
    body = {"items": [{"x": [0.5] * 30, "label": 0, "external_id": 7}]}
    error = assert_error(client.post(f"/api/v1/projects/{pid}/examples", json=body,
                                     headers=bearer(ADMIN)), 422, "validation_error")
    assert list(error["details"]) == ["items.0.external_id"]
    assert "string" in error["details"]["items.0.external_id"][0]
    assert row_counts(service) == before
    body["items"][0]["external_id"] = "7"
    assert client.post(f"/api/v1/projects/{pid}/examples", json=body,
                       headers=bearer(ADMIN)).status_code == 202

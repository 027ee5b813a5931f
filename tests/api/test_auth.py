"""Bearer tokens and the role matrix: who may call which endpoint.

Authentication and authorisation run before the body is parsed, so an allowed caller
sending an invalid body gets 422 (never 401/403) and nothing is stored."""
import pytest

from .conftest import ADMIN, assert_error, bearer

EVERYONE = ("admin", "ingest", "annotator", "viewer")

# (method, path, json body, roles allowed). Bodies are invalid on purpose where the call
# would otherwise change state.
MATRIX = [
    ("GET", "/projects/{pid}", None, EVERYONE),
    ("POST", "/projects", {"name": ""}, ("admin",)),
    ("POST", "/projects/{pid}/tokens", {"role": "superuser"}, ("admin",)),
    ("POST", "/projects/{pid}/examples", {"items": []}, ("admin", "ingest")),
    ("GET", "/projects/{pid}/examples", None, EVERYONE),
    ("GET", "/projects/{pid}/queries/1", None, EVERYONE),
    ("POST", "/projects/{pid}/queries/next", None, ("admin", "annotator")),
    ("POST", "/projects/{pid}/queries/1/answer", {"example_label": "one"},
     ("admin", "annotator")),
    ("GET", "/projects/{pid}/models", None, EVERYONE),
    ("GET", "/projects/{pid}/stats", None, EVERYONE),
    ("GET", "/projects/{pid}/export?format=csv", None, EVERYONE),
    ("POST", "/projects/{pid}/audits", {"detectors": []}, ("admin",)),
    ("GET", "/projects/{pid}/audits/1", None, EVERYONE),
    ("POST", "/projects/{pid}/audits/1/enqueue", {"top_k": -1}, ("admin",)),
]


def call(client, method, path, body, pid, token=None, headers=None):
    headers = dict(headers or {})
    if token is not None:
        headers.update(bearer(token))
    return client.open("/api/v1" + path.format(pid=pid), method=method, json=body,
                       headers=headers)


@pytest.mark.parametrize("method,path,body,allowed", MATRIX,
                         ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_role_matrix(client, project, method, path, body, allowed):
    pid, tokens = project["id"], project["tokens"]
    assert_error(call(client, method, path, body, pid), 401, "unauthorized")
    assert_error(call(client, method, path, body, pid, "not-a-token"), 401, "unauthorized")
    assert_error(call(client, method, path, body, pid,
                      headers={"Authorization": "Basic dXNlcjpwdw=="}), 401, "unauthorized")
    for role, token in tokens.items():
        response = call(client, method, path, body, pid, token)
        if role in allowed:
            assert response.status_code not in (401, 403), (role, response.get_json())
        else:
            assert_error(response, 403, "forbidden")
    assert client.get(f"/api/v1/projects/{pid}/examples",
                      headers=bearer(ADMIN)).get_json()["total"] == 0


def test_tokens_are_scoped_to_their_project(client, project):
    other = client.post("/api/v1/projects", headers=bearer(ADMIN),
                        json={"name": "other", "classes": ["a", "b"], "input_shape": [2]})
    assert other.status_code == 201
    for role, token in project["tokens"].items():
        response = client.get(f"/api/v1/projects/{other.json['id']}", headers=bearer(token))
        if role == "admin":
            assert response.status_code == 200
        else:
            assert_error(response, 403, "forbidden")
    listed = client.get("/api/v1/projects", headers=bearer(project["tokens"]["viewer"]))
    assert [p["id"] for p in listed.json["items"]] == [project["id"]]
    everything = client.get("/api/v1/projects", headers=bearer(ADMIN))
    assert len(everything.json["items"]) == 2


def test_new_token_is_shown_once_and_works(client, project, service):
    minted = client.post(f"/api/v1/projects/{project['id']}/tokens", headers=bearer(ADMIN),
                         json={"role": "viewer", "name": "dashboard"})
    assert minted.status_code == 201
    secret = minted.json["token"]
    assert minted.json["role"] == "viewer" and minted.json["name"] == "dashboard"
    assert client.get(f"/api/v1/projects/{project['id']}/stats",
                      headers=bearer(secret)).status_code == 200
    # Only a hash is stored: the secret appears nowhere in the database.
    from sqlalchemy import text
    with service.store.engine.connect() as connection:
        stored = connection.execute(text("SELECT secret_hash FROM tokens")).scalars().all()
    assert secret not in stored and all(len(h) >= 32 for h in stored)


def test_unknown_project_is_404_for_the_admin(client):
    assert_error(client.get("/api/v1/projects/999", headers=bearer(ADMIN)), 404, None)

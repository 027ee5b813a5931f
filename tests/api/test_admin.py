"""The admin endpoints over HTTP: list audits, list and revoke tokens, change settings with
their history, delete a project; roles, validation (422), 404 and 409."""
import pytest

from .conftest import ADMIN, assert_error, batch, bearer


def url(pid, rest=""):
    return f"/api/v1/projects/{pid}{rest}"


@pytest.fixture
def project_admin(client, project):
    """A project-scoped admin token named "owner"."""
    answer = client.post(url(project["id"], "/tokens"), json={"role": "admin", "name": "owner"},
                         headers=bearer(ADMIN))
    assert answer.status_code == 201, answer.json
    return answer.json


def test_new_paths_are_documented(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"patch", "delete"} <= set(paths["/api/v1/projects/{pid}"])
    assert "get" in paths["/api/v1/projects/{pid}/history"]
    assert "get" in paths["/api/v1/projects/{pid}/tokens"]
    assert "delete" in paths["/api/v1/projects/{pid}/tokens/{tid}"]
    assert "get" in paths["/api/v1/projects/{pid}/audits"]


# -- tokens ----------------------------------------------------------------------------------
def test_list_tokens(client, project, project_admin):
    pid = project["id"]
    for token in (ADMIN, project_admin["token"]):
        answer = client.get(url(pid, "/tokens"), headers=bearer(token))
        assert answer.status_code == 200, answer.json
        items = answer.json["items"]
        assert [t["role"] for t in items] == ["ingest", "annotator", "viewer", "admin"]
        for t in items:
            assert set(t) == {"id", "project_id", "role", "name", "created_at", "revoked"}
            assert t["revoked"] is False and t["project_id"] == pid
        assert not any(secret in answer.get_data(True) for secret in project["tokens"].values())
    for role in ("viewer", "annotator", "ingest"):
        assert_error(client.get(url(pid, "/tokens"), headers=bearer(project["tokens"][role])),
                     403, "forbidden")
    assert_error(client.get(url(pid, "/tokens")), 401, "unauthorized")
    assert_error(client.get(url(999, "/tokens"), headers=bearer(ADMIN)), 404, "not_found")


def test_revoked_token_gets_401_at_once(client, project, project_admin):
    pid, viewer = project["id"], project["tokens"]["viewer"]
    assert client.get(url(pid), headers=bearer(viewer)).status_code == 200
    tid = next(t["id"] for t in client.get(url(pid, "/tokens"), headers=bearer(ADMIN))
               .json["items"] if t["role"] == "viewer")
    assert_error(client.delete(url(pid, f"/tokens/{tid}"), headers=bearer(viewer)), 403)
    answer = client.delete(url(pid, f"/tokens/{tid}"), headers=bearer(project_admin["token"]))
    assert answer.status_code == 204 and not answer.data
    assert_error(client.get(url(pid), headers=bearer(viewer)), 401, "unauthorized")
    listed = client.get(url(pid, "/tokens"), headers=bearer(ADMIN)).json["items"]
    assert [t["revoked"] for t in listed if t["id"] == tid] == [True]
    assert_error(client.delete(url(pid, f"/tokens/{tid}"), headers=bearer(ADMIN)), 409,
                 "conflict")
    assert_error(client.delete(url(pid, "/tokens/9999"), headers=bearer(ADMIN)), 404,
                 "not_found")
    assert_error(client.delete(url(999, f"/tokens/{tid}"), headers=bearer(ADMIN)), 404)
    # The other tokens still work.
    assert client.get(url(pid), headers=bearer(project["tokens"]["annotator"])).status_code \
        == 200


def test_a_project_admin_cannot_touch_another_projects_tokens(client, project, project_admin):
    other = client.post("/api/v1/projects", json={"name": "other", "classes": ["a", "b"],
                                                  "input_shape": [2]},
                        headers=bearer(ADMIN)).json["id"]
    token = client.post(url(other, "/tokens"), json={"role": "viewer"},
                        headers=bearer(ADMIN)).json
    headers = bearer(project_admin["token"])
    assert_error(client.get(url(other, "/tokens"), headers=headers), 403)
    assert_error(client.delete(url(other, f"/tokens/{token['id']}"), headers=headers), 403)
    # ... nor revoke it through its own project's URL.
    assert_error(client.delete(url(project["id"], f"/tokens/{token['id']}"), headers=headers),
                 404)


# -- settings --------------------------------------------------------------------------------
def test_patch_settings_and_history(client, project, project_admin):
    pid = project["id"]
    answer = client.patch(url(pid), json={"threshold": 0.35, "retrain": {"mode": "scratch"}},
                          headers=bearer(project_admin["token"]))
    assert answer.status_code == 200, answer.json
    assert answer.json["threshold"] == 0.35
    assert answer.json["retrain"] == {"mode": "scratch", "every_n_answers": 3}
    answer = client.patch(url(pid), json={"strategy": "nearest", "damping": 0.5,
                                          "bootstrap_size": 80}, headers=bearer(ADMIN))
    assert answer.status_code == 200, answer.json
    assert client.get(url(pid), headers=bearer(ADMIN)).json["bootstrap_size"] == 80
    history = client.get(url(pid, "/history"), headers=bearer(project["tokens"]["viewer"]))
    assert history.status_code == 200, history.json
    items = history.json["items"]
    assert [e["actor"] for e in items] == ["owner", "admin"]
    assert items[0]["changes"] == {
        "threshold": {"old": 0.2, "new": 0.35},
        "retrain": {"old": {"mode": "warm", "every_n_answers": 3},
                    "new": {"mode": "scratch", "every_n_answers": 3}}}
    assert set(items[1]["changes"]) == {"strategy", "damping", "bootstrap_size"}
    assert items[1]["changes"]["bootstrap_size"] == {"old": 60, "new": 80}
    answer = client.patch(url(pid), json={"query_budget": 5, "queue_order": "fifo"},
                          headers=bearer(ADMIN))
    assert answer.status_code == 200, answer.json
    assert (answer.json["query_budget"], answer.json["queue_order"]) == (5, "fifo")
    answer = client.patch(url(pid), json={"query_budget": None}, headers=bearer(ADMIN))
    assert answer.status_code == 200 and answer.json["query_budget"] is None
    items = client.get(url(pid, "/history"), headers=bearer(ADMIN)).json["items"]
    assert items[-1]["changes"] == {"query_budget": {"old": 5, "new": None}}


@pytest.mark.parametrize("body, field", [
    ({"threshold": 1.5}, "threshold"), ({"threshold": "0.3"}, "threshold"),
    ({"threshold": None}, "threshold"), ({"strategy": "nope"}, "strategy"),
    ({"damping": 0}, "damping"), ({"damping": True}, "damping"),
    ({"bootstrap_size": 1}, "bootstrap_size"), ({"bootstrap_size": 2.5}, "bootstrap_size"),
    ({"retrain": {"mode": "hot"}}, "retrain.mode"),
    ({"retrain": {"every_n_answers": 0}}, "retrain.every_n_answers"),
    ({"retrain": {}}, "retrain"), ({}, "_schema"),
    ({"name": "renamed"}, "name"), ({"classes": ["x", "y"]}, "classes"),
    ({"input_shape": [4]}, "input_shape"), ({"model": {"kind": "lr"}}, "model"),
    ({"input_kind": "image"}, "input_kind"), ({"holdout_share": 0.1}, "holdout_share"),
    ({"feature_names": ["a"]}, "feature_names"), ({"queue_order": "random"}, "queue_order"),
    ({"query_budget": 0}, "query_budget"), ({"query_budget": "5"}, "query_budget"),
    ({"threshold": 0.3, "colour": "red"}, "colour"),
])
def test_patch_refuses_bad_values(client, project, body, field):
    error = assert_error(client.patch(url(project["id"]), json=body, headers=bearer(ADMIN)),
                         422, "validation_error")
    assert field in error["details"], error
    assert client.get(url(project["id"], "/history"), headers=bearer(ADMIN)).json == \
        {"items": []}


def test_patch_roles_and_missing_project(client, project):
    pid = project["id"]
    for role in ("viewer", "annotator", "ingest"):
        assert_error(client.patch(url(pid), json={"threshold": 0.3},
                                  headers=bearer(project["tokens"][role])), 403, "forbidden")
    assert_error(client.patch(url(pid), json={"threshold": 0.3}), 401)
    assert_error(client.patch(url(999), json={"threshold": 0.3}, headers=bearer(ADMIN)), 404)
    assert_error(client.get(url(999, "/history"), headers=bearer(ADMIN)), 404)


# -- audits, bootstrap conflict and delete over a project with a model -------------------------
def test_list_audits_bootstrap_conflict_and_delete(client, streamed, project_admin):
    pid, viewer = streamed["id"], streamed["tokens"]["viewer"]
    created = client.post(url(pid, "/audits"), json={"detectors": ["margin"], "top_k": 5},
                          headers=bearer(ADMIN))
    assert created.status_code == 202, created.json
    page = client.get(url(pid, "/audits"), headers=bearer(viewer))
    assert page.status_code == 200, page.json
    ids = [a["id"] for a in page.json["items"]]
    assert page.json["total"] == 2 and ids[0] == created.json["id"] and ids == sorted(ids)[::-1]
    assert page.json["items"][0]["status"] == "done"
    one = client.get(url(pid, "/audits"), query_string={"offset": 1, "limit": 1},
                     headers=bearer(viewer)).json
    assert [a["id"] for a in one["items"]] == ids[1:] and one["total"] == 2
    assert_error(client.get(url(pid, "/audits"), query_string={"limit": 0},
                            headers=bearer(viewer)), 422)
    assert_error(client.get(url(999, "/audits"), headers=bearer(ADMIN)), 404)
    assert_error(client.get(url(pid, "/audits")), 401)

    # The first model exists: the bootstrap size can no longer change.
    assert_error(client.patch(url(pid), json={"bootstrap_size": 30}, headers=bearer(ADMIN)),
                 409, "conflict")

    # Only the global admin token may delete the project.
    for token in (project_admin["token"], viewer):
        assert_error(client.delete(url(pid), headers=bearer(token)), 403, "forbidden")
    answer = client.delete(url(pid), headers=bearer(ADMIN))
    assert answer.status_code == 204 and not answer.data
    assert_error(client.get(url(pid), headers=bearer(ADMIN)), 404)
    assert_error(client.get(url(pid), headers=bearer(viewer)), 401)
    assert_error(client.delete(url(pid), headers=bearer(ADMIN)), 404)
    assert client.get("/api/v1/projects", headers=bearer(ADMIN)).json == {"items": []}


def test_a_deleted_project_can_be_recreated(client, project, breast):
    pid = project["id"]
    assert client.post(url(pid, "/examples"), json=batch(breast, 0, 10),
                       headers=bearer(project["tokens"]["ingest"])).status_code == 202
    assert client.delete(url(pid), headers=bearer(ADMIN)).status_code == 204
    again = client.post("/api/v1/projects", json={"name": "breast", "classes": ["a", "b"],
                                                  "input_shape": [30]}, headers=bearer(ADMIN))
    assert again.status_code == 201
    stats = client.get(url(again.json["id"], "/stats"), headers=bearer(ADMIN)).json
    assert sum(stats["examples"].values()) == 0

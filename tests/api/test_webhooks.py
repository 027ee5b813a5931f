"""``/projects/<pid>/webhooks``: admin-only endpoints and the delivery log over HTTP."""
import base64

import pytest

from cincer_service.service import webhooks
from tests.cincer_service.service.test_webhooks import Receiver, closed_port_url

from .conftest import ADMIN, PROJECT, assert_error, batch, bearer


def hooks_url(pid, rest=""):
    return f"/api/v1/projects/{pid}/webhooks{rest}"


def flipped(breast, start, stop):
    body = batch(breast, start, stop)
    for item in body["items"]:
        item["label"] = 1 - item["label"]
    return body


def test_endpoints_and_delivery_log(client, project, breast):
    pid, admin = project["id"], bearer(ADMIN)
    with Receiver(statuses=(500, 200)) as receiver:
        created = client.post(hooks_url(pid), json={"url": receiver.url}, headers=admin)
        assert created.status_code == 201, created.get_json()
        endpoint = created.get_json()
        assert endpoint["url"] == receiver.url and endpoint["active"] is True
        assert endpoint["events"] == list(webhooks.EVENTS)
        secret = endpoint["secret"]
        assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
        listed = client.get(hooks_url(pid), headers=admin).get_json()["items"]
        assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]

        ingest = bearer(project["tokens"]["ingest"])
        assert client.post(f"/api/v1/projects/{pid}/examples", json=batch(breast, 0, 3),
                           headers=ingest).status_code == 202
        changed = client.post(f"/api/v1/projects/{pid}/examples",
                              json=flipped(breast, 0, 2), headers=ingest)
        assert changed.status_code == 202                 # the 500 did not fail the request
        log_url = hooks_url(pid, f"/{endpoint['id']}/deliveries")
        log = client.get(log_url, headers=admin).get_json()
        assert log["total"] == 2
        first, second = log["items"][1], log["items"][0]              # newest first
        assert first["id"] < second["id"]
        assert (first["status"], first["attempts"], first["response_status"]) == \
            ("pending", 1, 500)
        assert first["last_error"].startswith("HTTP 500") and first["delivered_at"] is None
        assert (second["status"], second["attempts"], second["response_status"]) == \
            ("delivered", 1, 200)
        assert first["payload"]["type"] == "label.changed"
        assert first["payload"]["data"]["external_id"] == "0"
        assert {"message_id", "event", "next_attempt_at", "created_at"} <= set(first)

        page = client.get(log_url + "?offset=1&limit=1", headers=admin).get_json()
        assert page["total"] == 2 and [d["id"] for d in page["items"]] == [first["id"]]
        for headers, body in receiver.requests:
            assert webhooks.verify(secret, headers, body)["type"] == "label.changed"

    # Deleting deactivates: gone from the list, pending deliveries given up, log kept.
    deleted = client.delete(hooks_url(pid, f"/{endpoint['id']}"), headers=admin)
    assert deleted.status_code == 204 and deleted.get_data() == b""
    assert client.delete(hooks_url(pid, f"/{endpoint['id']}"),
                         headers=admin).status_code == 204
    assert client.get(hooks_url(pid), headers=admin).get_json()["items"] == []
    log = client.get(log_url, headers=admin).get_json()
    assert log["items"][1]["status"] == "failed"
    assert log["items"][1]["last_error"] == "endpoint deactivated"


def test_bad_bodies_and_unknown_ids(client, project):
    pid, admin = project["id"], bearer(ADMIN)
    for body in [{}, {"url": "ftp://example.com/x"}, {"url": "not a url"},
                 {"url": "https://example.com/" + "x" * 2000}, {"url": 5},
                 {"url": "https://example.com/h", "events": ["model.deleted"]},
                 {"url": "https://example.com/h", "events": []},
                 {"url": "https://example.com/h", "events": "model.created"}]:
        error = assert_error(client.post(hooks_url(pid), json=body, headers=admin), 422)
        assert error["details"], body
    some = client.post(hooks_url(pid), json={"url": closed_port_url(),
                                             "events": ["model.created", "audit.finished"]},
                       headers=admin)
    assert some.status_code == 201 and some.get_json()["events"] == ["model.created",
                                                                     "audit.finished"]
    assert_error(client.post(hooks_url(999), json={"url": "https://example.com/h"},
                             headers=admin), 404, "not_found")
    assert_error(client.get(hooks_url(pid, "/999/deliveries"), headers=admin), 404)
    assert_error(client.delete(hooks_url(pid, "/999"), headers=admin), 404)
    assert_error(client.get(hooks_url(pid, f"/{some.get_json()['id']}/deliveries?limit=0"),
                            headers=admin), 422)


@pytest.mark.parametrize("role", ["ingest", "annotator", "viewer"])
def test_only_admins_manage_webhooks(client, project, role):
    pid, admin = project["id"], bearer(ADMIN)
    wid = client.post(hooks_url(pid), json={"url": "https://example.com/h"},
                      headers=admin).get_json()["id"]
    token = bearer(project["tokens"][role])
    assert_error(client.post(hooks_url(pid), json={"url": "https://example.com/h"},
                             headers=token), 403, "forbidden")
    assert_error(client.get(hooks_url(pid), headers=token), 403, "forbidden")
    assert_error(client.get(hooks_url(pid, f"/{wid}/deliveries"), headers=token), 403)
    assert_error(client.delete(hooks_url(pid, f"/{wid}"), headers=token), 403)
    assert_error(client.get(hooks_url(pid)), 401, "unauthorized")
    # A project's own admin token may manage its webhooks; another project's may not.
    own = client.post(f"/api/v1/projects/{pid}/tokens", json={"role": "admin"},
                      headers=admin).get_json()["token"]
    assert client.get(hooks_url(pid), headers=bearer(own)).status_code == 200
    other = client.post("/api/v1/projects", json={**PROJECT, "name": "other"},
                        headers=admin).get_json()["id"]
    assert_error(client.get(hooks_url(other), headers=bearer(own)), 403)

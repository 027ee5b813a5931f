"""POST /projects/{pid}/examples with ``Prefer: wait=<seconds>``: verdicts in the answer,
Preference-Applied, the pair leased to the caller, bad preferences, and the Python client's
``ingest(..., wait=)`` and the CLI's ``--wait``."""
import json

import pytest

from clients.cli import main as cli_main
from clients.client import CincerClient

from .conftest import ADMIN, assert_error, batch, bearer

BOOT = 60
QUERY_SIDE = {"id", "external_id", "x", "text", "label", "label_name", "prediction",
              "prediction_name", "probabilities"}


@pytest.fixture
def trained(client, project, breast):
    """The project after its bootstrap set (first model trained inline), with an assistant
    token: a project admin token, which ingests and answers."""
    pid = project["id"]
    response = client.post(f"/api/v1/projects/{pid}/examples", json=batch(breast, 0, BOOT),
                           headers=bearer(project["tokens"]["ingest"]))
    assert response.status_code == 202
    minted = client.post(f"/api/v1/projects/{pid}/tokens", json={"role": "admin",
                                                                  "name": "assistant"},
                         headers=bearer(ADMIN))
    assert minted.status_code == 201, minted.get_json()
    return {**project, "assistant": minted.get_json()["token"]}


def test_wait_answers_each_verdict_and_leases_the_pair_to_the_caller(client, trained, breast):
    pid, me = trained["id"], bearer(trained["assistant"])
    url = f"/api/v1/projects/{pid}/examples"
    response = client.post(url, json=batch(breast, BOOT, BOOT + 60),
                           headers={**me, "Prefer": "respond-async, wait=2"})
    assert response.status_code == 202, response.get_json()
    assert response.headers["Preference-Applied"] == "wait=2"
    items = response.get_json()["items"]
    assert {i["verdict"] for i in items} == {"accepted", "suspicious"}
    for item in items:
        assert {"id", "status", "outcome", "verdict", "reason", "margin", "prediction",
                "prediction_name", "probabilities", "query"} == set(item)
        assert item["status"] == "pending" and len(item["probabilities"]) == 2
    suspicious = [i for i in items if i["verdict"] == "suspicious"]
    for item in suspicious:
        q = item["query"]
        assert q["leased_to_you"] and q["status"] == "leased" and q["lease_expires_at"]
        assert set(q["counterexample"]) == QUERY_SIDE
        assert q["counterexample"]["label"] == item["prediction"]
    # Another annotator gets none of them; the assistant answers with its own token.
    other = client.post(f"/api/v1/projects/{pid}/queries/next",
                        headers=bearer(trained["tokens"]["annotator"]))
    assert other.status_code == 204 or other.get_json()["id"] not in \
        {i["query"]["id"] for i in suspicious}
    first = suspicious[0]
    answer = client.post(f"/api/v1/projects/{pid}/queries/{first['query']['id']}/answer",
                         json={"example_label": first["prediction_name"],
                               "counterexample_label": first["prediction"]}, headers=me)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["status"] == "answered"


def test_without_the_preference_nothing_changes(client, trained, breast):
    pid = trained["id"]
    response = client.post(f"/api/v1/projects/{pid}/examples",
                           json=batch(breast, BOOT, BOOT + 5),
                           headers={**bearer(trained["assistant"]), "Prefer": "return=minimal"})
    assert response.status_code == 202 and "Preference-Applied" not in response.headers
    assert all(set(i) == {"id", "status", "outcome"} for i in response.get_json()["items"])


def test_unscreened_before_the_first_model(client, project, breast):
    pid = project["id"]
    response = client.post(f"/api/v1/projects/{pid}/examples", json=batch(breast, 0, 10),
                           headers={**bearer(ADMIN), "Prefer": "wait=0.5"})
    assert response.status_code == 202 and response.headers["Preference-Applied"] == "wait=0.5"
    assert {i["verdict"] for i in response.get_json()["items"]} == {"unscreened"}
    assert all(i["reason"] for i in response.get_json()["items"])


@pytest.mark.parametrize("prefer", ["wait=abc", "wait=0", "wait=-1", "wait=10.5", "wait=",
                                    "wait", "wait=nan", "wait=inf", "handling=lenient, wait=x"])
def test_bad_wait_is_a_400_and_stores_nothing(client, trained, breast, prefer):
    pid = trained["id"]
    url = f"/api/v1/projects/{pid}/examples"
    error = assert_error(client.post(url, json=batch(breast, BOOT, BOOT + 2),
                                     headers={**bearer(trained["assistant"]), "Prefer": prefer}),
                         400, "bad_request")
    assert "wait" in error["message"] and "Prefer" in error["details"]
    total = client.get(url, headers=bearer(ADMIN)).get_json()["total"]
    assert total == BOOT


def test_more_than_100_items_with_wait_is_a_422(client, trained, breast):
    pid = trained["id"]
    url = f"/api/v1/projects/{pid}/examples"
    error = assert_error(client.post(url, json=batch(breast, BOOT, BOOT + 101),
                                     headers={**bearer(trained["assistant"]),
                                              "Prefer": "wait=1"}),
                         422, "validation_error")
    assert "smaller batches" in error["message"] and "drop the wait" in error["message"]
    assert client.get(url, headers=bearer(ADMIN)).get_json()["total"] == BOOT
    # The same batch without the wait is fine.
    assert client.post(url, json=batch(breast, BOOT, BOOT + 101),
                       headers=bearer(trained["assistant"])).status_code == 202


class FlaskSession:
    """``requests.Session.request`` over the Flask test client (for ``CincerClient``)."""

    def __init__(self, client):
        self.client, self.sent = client, []

    def request(self, method, url, params=None, json=None, headers=None, timeout=None):
        self.sent.append((method, url, headers, timeout))
        answer = self.client.open(url.removeprefix("http://svc"), method=method, json=json,
                                  headers=headers, query_string=params)
        return Answer(answer)


class Answer:
    def __init__(self, answer):
        self.status_code, self.reason = answer.status_code, answer.status
        self.content, self.text = answer.get_data(), answer.get_data(as_text=True)
        self.headers = answer.headers

    def json(self):
        return json.loads(self.text)


def test_the_client_ingests_with_wait_and_the_cli_has_wait(client, trained, breast, tmp_path,
                                                           capsys, monkeypatch):
    pid = trained["id"]
    session = FlaskSession(client)
    api = CincerClient("http://svc", trained["assistant"], session=session)
    items = batch(breast, BOOT, BOOT + 130)["items"]
    results = api.ingest(pid, items[:120], batch_size=500, wait=1.0)
    assert len(results) == 120 and {r["verdict"] for r in results} <= {"accepted",
                                                                       "suspicious"}
    sent = [(h.get("Prefer"), t) for m, _, h, t in session.sent if m == "POST"]
    assert sent == [("wait=1", 30)] * 2                   # 120 items: batches of 100 and 20
    leased = [r for r in results if r["verdict"] == "suspicious"]
    assert leased and all(r["query"]["leased_to_you"] for r in leased)
    q = leased[0]["query"]
    done = api.answer_query(pid, q["id"], example_label=leased[0]["prediction"],
                            counterexample_label=q["counterexample"]["label"])
    assert done["status"] == "answered"
    assert all("verdict" not in r for r in api.ingest(pid, items[120:125]))

    # The CLI: ingest --wait counts the verdicts and lists the suspicious examples' queries.
    monkeypatch.setattr("clients.cli.CincerClient",
                        lambda url, token, **kw: CincerClient(url, token, session=session))
    path = tmp_path / "more.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items[125:130]))
    capsys.readouterr()
    status = cli_main(["--url", "http://svc", "--token", trained["assistant"], str(pid),
                       "ingest", str(path), "--quiet", "--wait", "0.5"])
    out, err = capsys.readouterr()
    assert status == 0, err
    summary = json.loads(out)
    assert summary["ingested"] == 5 and sum(summary["verdicts"].values()) == 5
    assert set(summary["verdicts"]) <= {"accepted", "suspicious"}
    assert len(summary["suspicious"]) == summary["verdicts"].get("suspicious", 0)
    assert session.sent[-1][2]["Prefer"] == "wait=0.5"

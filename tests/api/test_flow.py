"""The stream over HTTP: ingest, screening, leased queries, answers, histories, models."""
import csv
import io
import json
import threading

from api import create_app
from cincer_service.service import access

from .conftest import ADMIN, STREAMED, assert_error, batch, bearer

N = STREAMED


def truth_of(breast, side):
    return None if side is None else int(breast[0].y_train[int(side["external_id"])])


def test_queries_answers_and_histories(client, streamed, breast):
    pid, tokens = streamed["id"], streamed["tokens"]
    ann = bearer(tokens["annotator"])
    stats = client.get(f"/api/v1/projects/{pid}/stats", headers=ann).get_json()
    assert stats["model_version"] == 1 and stats["queries"]["open"] > 0

    query = client.post(f"/api/v1/projects/{pid}/queries/next", headers=ann)
    assert query.status_code == 200
    q = query.get_json()
    assert {"id", "example", "counterexample", "margin", "strategy", "model_version",
            "lease_expires_at"} <= set(q)
    assert q["example"]["prediction"] != q["example"]["label"] and q["margin"] > 0.2
    assert len(q["example"]["probabilities"]) == 2 and len(q["example"]["x"]) == 30
    assert q["counterexample"]["label"] == q["example"]["prediction"]
    # The holder asking again gets the same query back, not a second one.
    assert client.post(f"/api/v1/projects/{pid}/queries/next", headers=ann).get_json()["id"] \
        == q["id"]

    answer = {"example_label": truth_of(breast, q["example"]),
              "counterexample_label": truth_of(breast, q["counterexample"])}
    url = f"/api/v1/projects/{pid}/queries/{q['id']}/answer"
    keyed = {**ann, "Idempotency-Key": "answer-1"}
    first = client.post(url, json=answer, headers=keyed)
    assert first.status_code == 200 and first.get_json()["status"] == "answered"
    retry = client.post(url, json=answer, headers=keyed)       # the client's own retry
    assert retry.status_code == 200 and retry.get_json() == first.get_json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    changed = {**answer, "example_label": 1 - answer["example_label"]}
    for again in (answer, changed):                           # a second answer: a 409
        refused = assert_error(client.post(url, json=again, headers=ann), 409, "conflict")
        assert refused["details"]["already_answered"] is True
    assert_error(client.post(url, json={**answer, "example_label": 7}, headers=ann), 422)

    example = client.get(f"/api/v1/projects/{pid}/examples/{q['example']['id']}",
                         headers=ann).get_json()
    history = example["history"]
    assert history[0]["why"] == "ingest" and history[0]["old_label"] is None
    assert [h["why"] for h in history if h["query_id"] == q["id"]] == ["answer_example"]
    assert example["label"] == answer["example_label"]
    ce = client.get(f"/api/v1/projects/{pid}/examples/{q['counterexample']['id']}",
                    headers=ann).get_json()
    assert [h["why"] for h in ce["history"] if h["query_id"] == q["id"]] \
        == ["answer_counterexample"]
    assert_error(client.get(f"/api/v1/projects/{pid}/examples/99999", headers=ann), 404)
    assert_error(client.post(f"/api/v1/projects/{pid}/queries/99999/answer", json=answer,
                             headers=ann), 404)


def test_two_annotators_never_hold_the_same_query(app, streamed, service):
    pid = streamed["id"]
    minted = [access.create_token(service, pid, "annotator", name)["token"] for name in ("a", "b")]
    leased = {token: [] for token in minted}

    def lease(token):
        client = app.test_client()          # one client per thread
        for _ in range(4):
            response = client.post(f"/api/v1/projects/{pid}/queries/next",
                                   headers=bearer(token))
            if response.status_code == 200:
                leased[token].append(response.get_json()["id"])
                # answer so that the next lease is a fresh query
                q = response.get_json()
                ce = q["counterexample"]
                client.post(f"/api/v1/projects/{pid}/queries/{q['id']}/answer",
                            headers=bearer(token),
                            json={"example_label": q["example"]["label"],
                                  "counterexample_label": None if ce is None else ce["label"]})

    threads = [threading.Thread(target=lease, args=(t,)) for t in minted]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    a, b = leased.values()
    assert a and b and not set(a) & set(b)


def test_someone_elses_lease_is_409(client, streamed, service):
    pid = streamed["id"]
    alice = bearer(access.create_token(service, pid, "annotator", "alice")["token"])
    bob = bearer(access.create_token(service, pid, "annotator", "bob")["token"])
    q = client.post(f"/api/v1/projects/{pid}/queries/next", headers=alice).get_json()
    assert_error(client.post(f"/api/v1/projects/{pid}/queries/{q['id']}/answer", headers=bob,
                             json={"example_label": 0, "counterexample_label": 0}), 409)
    assert client.get(f"/api/v1/projects/{pid}/queries/{q['id']}",
                      headers=bob).get_json()["status"] == "leased"


def test_no_open_query_is_204(client, project):
    response = client.post(f"/api/v1/projects/{project['id']}/queries/next",
                           headers=bearer(project["tokens"]["annotator"]))
    assert response.status_code == 204 and response.data == b""


def test_listing_export_models_and_retrain(client, streamed, breast):
    pid = streamed["id"]
    view = bearer(streamed["tokens"]["viewer"])
    page = client.get(f"/api/v1/projects/{pid}/examples?offset=10&limit=5",
                      headers=view).get_json()
    assert page["total"] == N and len(page["items"]) == 5
    suspicious = client.get(f"/api/v1/projects/{pid}/examples?status=suspicious",
                            headers=view).get_json()
    assert suspicious["total"] > 0
    assert all(item["status"] == "suspicious" for item in suspicious["items"])

    rows = list(csv.DictReader(io.StringIO(
        client.get(f"/api/v1/projects/{pid}/export?format=csv", headers=view).get_data(True))))
    assert len(rows) == N and {"external_id", "label", "original_label"} <= set(rows[0])
    lines = client.get(f"/api/v1/projects/{pid}/export?format=jsonl",
                       headers=view).get_data(True).splitlines()
    assert [json.loads(line)["external_id"] for line in lines] == [r["external_id"]
                                                                   for r in rows]

    models = client.get(f"/api/v1/projects/{pid}/models", headers=view).get_json()["items"]
    assert len(models) == 1 and models[0]["train_size"] == 60
    project = client.get(f"/api/v1/projects/{pid}", headers=view).get_json()
    assert models[0]["training"]["schedule"] == project["model"]["schedule"]   # what it used
    assert models[0]["training"]["damping"] == project["damping"]
    queued = client.post(f"/api/v1/projects/{pid}/models/retrain", headers=bearer(ADMIN))
    assert queued.status_code == 202
    models = client.get(f"/api/v1/projects/{pid}/models", headers=view).get_json()["items"]
    assert len(models) == 2


def test_audit_over_http(client, project, breast):
    pid = project["id"]
    admin = bearer(ADMIN)
    client.post(f"/api/v1/projects/{pid}/examples", json=batch(breast, 0, 60), headers=admin)
    created = client.post(f"/api/v1/projects/{pid}/audits", headers=admin,
                          json={"detectors": ["margin", "self_influence"], "top_k": 10})
    assert created.status_code == 202, created.get_json()
    audit = client.get(f"/api/v1/projects/{pid}/audits/{created.get_json()['id']}",
                       headers=bearer(project["tokens"]["viewer"])).get_json()
    assert audit["status"] == "done" and len(audit["suspects"]) == 10
    assert set(audit["suspects"][0]["scores"]) == {"margin", "self_influence"}
    assert_error(client.post(f"/api/v1/projects/{pid}/audits", headers=admin,
                             json={"detectors": ["astrology"], "top_k": 10}), 422)
    # The first model queued its bootstrap audit (same detectors) already: those suspects
    # are under review, so enqueueing them again adds nothing.
    listed = client.get(f"/api/v1/projects/{pid}/queries?status=open", headers=admin).get_json()
    assert listed["total"] == 12 and {q["origin"] for q in listed["items"]} == {"bootstrap"}
    busy = {q["example"]["id"] for q in listed["items"]}
    fresh = [s["example_id"] for s in audit["suspects"][:3] if s["example_id"] not in busy]
    enqueued = client.post(f"/api/v1/projects/{pid}/audits/{audit['id']}/enqueue",
                           headers=admin, json={"top_k": 3}).get_json()
    assert enqueued["enqueued"] == len(fresh)
    q = client.post(f"/api/v1/projects/{pid}/queries/next",
                    headers=bearer(project["tokens"]["annotator"])).get_json()
    assert q["origin"] == "bootstrap"


def test_openapi_docs_health_and_metrics(client, streamed, service):
    spec = client.get("/api/v1/openapi.json").get_json()
    paths = set(spec["paths"])
    for path in ("/api/v1/projects", "/api/v1/projects/{pid}/examples",
                 "/api/v1/projects/{pid}/queries/next",
                 "/api/v1/projects/{pid}/queries/{qid}/answer",
                 "/api/v1/projects/{pid}/models/retrain", "/api/v1/projects/{pid}/export",
                 "/api/v1/projects/{pid}/audits/{aid}/enqueue", "/healthz", "/metrics"):
        assert path in paths, path
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    assert "IngestSchema" in json.dumps(spec) or "Ingest" in json.dumps(spec["components"])
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and b"swagger" in docs.data.lower()

    health = client.get("/healthz").get_json()
    assert health == {"status": "ok", "mode": "embedded", "database": "sqlite",
                      "broker": None}
    text = client.get("/metrics").get_data(True)
    assert "# TYPE cincer_examples gauge" in text
    assert f'cincer_examples{{project="{streamed["id"]}",status="suspicious"}}' in text
    assert 'cincer_http_requests_total{method="GET",endpoint="/healthz",status="200"} 1' in text

    # A second app in the same process has its own spec and works the same.
    other = create_app(service=service, config={"TESTING": True}).test_client()
    assert other.get("/api/v1/openapi.json").get_json()["paths"].keys() == spec["paths"].keys()

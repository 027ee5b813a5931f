"""The Label Studio ML backend protocol against a fake Label Studio (no server needed):
setup, predict, idempotent webhooks, paired review tasks, the sync job and bad input.
The real Label Studio test is ``tests/interop`` (``make test-interop``)."""
import base64
import itertools
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, select, update

from cincer_service.service import label_studio, queries
from cincer_service.service.store import Example, JobBackoff, Query, utcnow
from tests.api.conftest import ADMIN, assert_error, bearer
from tests.support.fake_label_studio import FakeLabelStudio

FEATURES = [f"f{i}" for i in range(30)]
CONFIG = ('<View><Table name="row" value="$row"/>'
          '<Choices name="diagnosis" toName="row" choice="single">'
          '<Choice value="malignant"/><Choice value="benign"/></Choices></View>')
PROJECT = {"name": "breast-ls", "classes": ["malignant", "benign"], "input_shape": [30],
           "input_kind": "tabular", "feature_names": FEATURES,
           "model": {"kind": "lr", "max_epochs": 10}, "bootstrap_size": 40,
           "retrain": {"mode": "warm", "every_n_answers": 3}}
LS_PROJECT = "7.1700000000"


@pytest.fixture
def fake(monkeypatch):
    fake = FakeLabelStudio(7, CONFIG)
    monkeypatch.setattr(label_studio, "client_factory", lambda host, token: fake)
    return fake


def basic(token, user="label-studio"):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


@pytest.fixture
def ls(client, fake):
    """A project connected to the fake Label Studio: ``{"id", "token", "url"}``."""
    created = client.post("/api/v1/projects", json=PROJECT, headers=bearer(ADMIN))
    assert created.status_code == 201, created.json
    pid = created.json["id"]
    token = client.post(f"/api/v1/projects/{pid}/tokens", json={"role": "admin",
                                                               "name": "label-studio"},
                        headers=bearer(ADMIN)).json["token"]
    url = f"/integrations/label-studio/{pid}"
    # Label Studio registers the backend's /webhook itself, without credentials
    fake.hooks.append({"id": 1, "project": 7, "url": f"http://localhost{url}/webhook",
                       "headers": {}, "send_for_all_actions": True})
    answer = client.post(f"{url}/setup", headers=basic(token), json={
        "project": LS_PROJECT, "schema": CONFIG, "hostname": "http://fake",
        "access_token": "ls-token"})
    assert answer.status_code == 200, answer.json
    assert answer.json["model_version"] == f"cincer-{pid}-v0"
    return {"id": pid, "token": token, "url": url}


task_ids = itertools.count(1)
annotation_ids = itertools.count(5000)


def event(x, label, action="ANNOTATION_CREATED", task_id=None, annotation_id=None,
          user="ann@example.com"):
    task_id = task_id or next(task_ids)
    annotation_id = annotation_id or next(annotation_ids)
    return {"action": action, "task": {"id": task_id, "data": {
        "row": {n: float(v) for n, v in zip(FEATURES, x)}}},
        "annotation": {"id": annotation_id, "task": task_id, "completed_by": {"email": user},
                       "result": [{"from_name": "diagnosis", "to_name": "row",
                                   "type": "choices", "value": {"choices": [label]}}]}}


def send(client, ls, body, status=200):
    answer = client.post(f"{ls['url']}/webhook", json=body, headers=basic(ls["token"]))
    assert answer.status_code == status, answer.get_json()
    return answer.get_json()


def count_examples(service, pid):
    with service.store.session() as s:
        return s.scalar(select(func.count(Example.id)).where(Example.project_id == pid))


def stream_in(client, ls, breast, start, stop):
    classes = PROJECT["classes"]
    return [send(client, ls, event(breast.data.X_train[i], classes[int(breast.noisy[i])]))
            for i in range(start, stop)]


def test_health_needs_no_auth_and_setup_registers_webhooks_and_review_project(client, ls, fake):
    assert client.get(f"{ls['url']}/health").json["status"] == "UP"
    review = [p for p, v in fake.projects.items() if "CINCER review" in v["title"]]
    assert len(review) == 1
    config = fake.projects[review[0]]["label_config"]
    assert 'name="example_label"' in config and 'name="counterexample_label"' in config
    hooks = {(h["project"], h["url"].rsplit("/", 1)[1]) for h in fake.hooks}
    assert hooks == {(7, "webhook"), (review[0], "webhook")}
    assert all(h["headers"]["Authorization"].startswith("Basic ") for h in fake.hooks)
    assert len(fake.hooks) == 2 and not any(h["send_for_all_actions"] for h in fake.hooks)
    status = client.get(f"{ls['url']}/status", headers=basic(ls["token"])).json
    assert status["ls_project_id"] == 7 and status["webhooks_ready"] is True


def test_wrong_password_and_unsupported_configs_are_refused(client, ls, fake, service):
    error = assert_error(client.post(f"{ls['url']}/webhook", headers=basic("cnc_wrong"),
                                     json={"action": "ANNOTATION_CREATED"}), 401, "unauthorized")
    assert "unknown token" in error["message"]
    assert_error(client.post(f"{ls['url']}/setup", json={}), 401)
    for config, words in (
            (CONFIG.replace('choice="single"', 'choice="multiple"'), "multi-label"),
            ('<View><Text name="t" value="$t"/><Labels name="l" toName="t">'
             '<Label value="malignant"/></Labels></View>', "spans"),
            ('<View><Image name="i" value="$i"/><RectangleLabels name="r" toName="i">'
             '<Label value="benign"/></RectangleLabels></View>', "boxes"),
            (CONFIG.replace('"benign"', '"healthy"'), "classes"),
            (CONFIG.replace("Table", "Image"), "tabular"),
            ("<View", "not XML")):
        error = assert_error(client.post(f"{ls['url']}/setup", headers=basic(ls["token"]), json={
            "project": "9.1", "schema": config}), 422)
        assert words in error["message"], (words, error)
    status = client.get(f"{ls['url']}/status", headers=basic(ls["token"])).json
    assert status["ls_project_id"] == 7 and status["config"]["data_field"] == "row"


def test_webhooks_make_examples_idempotently(client, ls, service, breast):
    x = breast.data.X_train
    first = event(x[0], "benign", task_id=900, annotation_id=9000)
    assert send(client, ls, first)["outcome"] == "created"
    assert send(client, ls, first)["outcome"] == "replayed"
    assert count_examples(service, ls["id"]) == 1
    updated = event(x[0], "malignant", "ANNOTATION_UPDATED", task_id=900, annotation_id=9000,
                    user="boss@example.com")
    answer = send(client, ls, updated)
    assert answer["outcome"] == "updated"
    eid = answer["example_id"]
    # a second annotation of the same task: the task keeps one example, the latest label
    second = event(x[0], "benign", task_id=900, annotation_id=9001)
    assert send(client, ls, second)["example_id"] == eid
    history = client.get(f"/api/v1/projects/{ls['id']}/examples/{eid}",
                         headers=bearer(ADMIN)).json
    assert history["label_name"] == "benign" and history["external_id"] == "ls-task-900"
    assert [h["actor"] for h in history["history"]] == [
        "label-studio:ann@example.com", "label-studio:boss@example.com",
        "label-studio:ann@example.com"]
    send(client, ls, {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 9001}]})
    assert client.get(f"/api/v1/projects/{ls['id']}/examples/{eid}",
                      headers=bearer(ADMIN)).json["label_name"] == "malignant"
    send(client, ls, {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 9000}]})
    assert client.get(f"/api/v1/projects/{ls['id']}/examples/{eid}",
                      headers=bearer(ADMIN)).json["status"] == "removed"
    assert send(client, ls, {"action": "PROJECT_UPDATED"})["outcome"] == "ignored"
    assert count_examples(service, ls["id"]) == 1


def test_bad_annotations_store_nothing(client, ls, service, breast):
    x = breast.data.X_train[0]
    no_field = event(x, "benign")
    no_field["task"]["data"] = {"other": 1}
    assert "no data field 'row'" in assert_error(
        client.post(f"{ls['url']}/webhook", json=no_field, headers=basic(ls["token"])),
        422)["message"]
    unknown = event(x, "healthy")
    assert "not in the label config" in assert_error(
        client.post(f"{ls['url']}/webhook", json=unknown, headers=basic(ls["token"])),
        422)["message"]
    short = event(x, "benign")
    del short["task"]["data"]["row"]["f3"]
    assert_error(client.post(f"{ls['url']}/webhook", json=short, headers=basic(ls["token"])),
                 422)
    assert count_examples(service, ls["id"]) == 0
    with service.store.session() as s:
        assert s.scalar(select(func.count(label_studio.LabelStudioAnnotation.id))) == 0


def test_predictions_review_tasks_and_answers(client, ls, fake, service, breast):
    pid = ls["id"]
    x, classes = breast.data.X_train, PROJECT["classes"]
    bootstrap = [{"id": 10_000 + i, "data": {"row": dict(zip(FEATURES, map(float, x[i])))},
                  "annotations": [{"result": [{"from_name": "diagnosis", "to_name": "row",
                                               "type": "choices", "value": {
                                                   "choices": [classes[int(breast.noisy[i])]]}}]}]}
                 for i in range(40)]
    assert client.post(f"{ls['url']}/import", json=bootstrap,
                       headers=basic(ls["token"])).status_code == 201
    stream_in(client, ls, breast, 40, 80)
    task = {"id": 1, "data": {"row": dict(zip(FEATURES, map(float, breast.data.X_train[0])))}}
    answer = client.post(f"{ls['url']}/predict", headers=basic(ls["token"]),
                         json={"tasks": [task, {"id": 2, "data": {}}]}).json
    first, skipped = answer["results"]
    assert first["model_version"].startswith(f"cincer-{pid}-v") and first["model_version"] != \
        f"cincer-{pid}-v0"
    assert 0.5 <= first["score"] <= 1.0
    assert first["result"][0]["value"]["choices"][0] in PROJECT["classes"]
    assert skipped["result"] == []
    open_queries = queries.list_queries(service, pid, status="open")["items"]
    assert open_queries, "the noisy stream opened queries"
    reviews = fake.review_tasks()
    assert {t["data"]["cincer_query_id"] for t in reviews} == {q["id"] for q in open_queries}
    review = reviews[0]
    q = queries.get_query(service, pid, review["data"]["cincer_query_id"])
    assert review["data"]["cincer_suspicion"] == pytest.approx(q["margin"], abs=1e-5)
    assert review["data"]["cincer_pair"] is True and review["data"]["why"]
    assert review["predictions"][0]["result"][0]["value"]["choices"] == [
        q["example"]["prediction_name"]]
    # the annotator answers the review task in Label Studio
    result = [{"from_name": "example_label", "to_name": "example", "type": "choices",
               "value": {"choices": ["benign"]}}]
    if q["counterexample"]:
        result.append({"from_name": "counterexample_label", "to_name": "counterexample",
                       "type": "choices", "value": {"choices": ["malignant"]}})
    body = {"action": "ANNOTATION_CREATED", "task": {"id": review["id"], "data": review["data"]},
            "annotation": {"id": 77001, "task": review["id"], "result": result,
                           "completed_by": {"email": "reviewer@example.com"}}}
    assert send(client, ls, body)["outcome"] == "answered"
    answered = queries.get_query(service, pid, q["id"])
    assert answered["status"] == "answered"
    assert answered["answer"]["annotator"] == "label-studio:reviewer@example.com"
    screened = [t for t in fake.tasks_by_id.values() if t["project"] == 7]
    assert screened and all(isinstance(t["data"]["cincer_suspicion"], float) for t in screened)
    assert answered["answer"]["example_label_name"] == "benign"
    history = client.get(f"/api/v1/projects/{pid}/examples/{q['example']['id']}",
                         headers=bearer(ADMIN)).json["history"]
    assert history[-1]["why"] == "answer_example" and history[-1]["query_id"] == q["id"]
    assert send(client, ls, body)["outcome"] == "answered"        # a replay changes nothing
    # a pair rebuilt by refresh gets a new review task at the next sync
    rebuilt = next(t for t in fake.review_tasks() if t["id"] != review["id"])
    with service.store.session() as s:
        s.execute(update(Query).where(Query.id == rebuilt["data"]["cincer_query_id"])
                  .values(refreshed_at=utcnow() + timedelta(seconds=1)))
    label_studio.sync(service, pid)
    assert rebuilt["id"] not in fake.tasks_by_id
    assert [t["data"]["cincer_query_id"] for t in fake.review_tasks()].count(
        rebuilt["data"]["cincer_query_id"]) == 1
    # a query answered elsewhere loses its review task at the next sync
    other = next(t for t in fake.review_tasks() if t["id"] != review["id"])
    ann = client.post(f"/api/v1/projects/{pid}/tokens", json={"role": "annotator"},
                      headers=bearer(ADMIN)).json["token"]
    while True:
        leased = client.post(f"/api/v1/projects/{pid}/queries/next", headers=bearer(ann)).json
        if leased["id"] == other["data"]["cincer_query_id"]:
            break
        client.post(f"/api/v1/projects/{pid}/queries/{leased['id']}/release",
                    headers=bearer(ann))
    labels = {"example_label": 0, "counterexample_label": 0 if leased["counterexample"]
              else None}
    if not leased["counterexample"]:
        labels.pop("counterexample_label")
    done = client.post(f"/api/v1/projects/{pid}/queries/{leased['id']}/answer", json=labels,
                       headers=bearer(ann))
    assert done.status_code == 200, done.json
    assert other["id"] not in fake.tasks_by_id


def test_sync_repairs_a_missed_webhook_and_survives_label_studio_down(client, ls, fake,
                                                                      service, breast):
    pid = ls["id"]
    x = breast.data.X_train
    fake.tasks_by_id[4242] = {"id": 4242, "project": 7, "data": {
        "row": dict(zip(FEATURES, map(float, x[1])))}, "annotations": [
        {"id": 4343, "result": [{"from_name": "diagnosis", "to_name": "row", "type": "choices",
                                 "value": {"choices": ["benign"]}}], "completed_by": 3}]}
    fake.down = True
    answer = client.post(f"{ls['url']}/sync", headers=basic(ls["token"]))
    assert answer.status_code == 202
    status = client.get(f"{ls['url']}/status", headers=basic(ls["token"])).json
    assert "unreachable" in status["last_error"] and status["pull_wanted"] is True
    with service.store.session() as s:
        backoff = s.scalar(select(JobBackoff).where(JobBackoff.name == "label_studio_sync"))
        assert backoff is not None and backoff.failures == 1
    assert count_examples(service, pid) == 0
    fake.down = False
    client.post(f"{ls['url']}/sync", headers=basic(ls["token"]))
    status = client.get(f"{ls['url']}/status", headers=basic(ls["token"])).json
    assert status["last_error"] is None and status["pull_wanted"] is False
    page = client.get(f"/api/v1/projects/{pid}/examples", headers=bearer(ADMIN)).json
    assert [(e["external_id"], e["label_name"]) for e in page["items"]] == [
        ("ls-task-4242", "benign")]
    eid = page["items"][0]["id"]
    history = client.get(f"/api/v1/projects/{pid}/examples/{eid}", headers=bearer(ADMIN)).json
    assert history["history"][0]["actor"] == "label-studio:three@example.com"
    client.post(f"{ls['url']}/sync", headers=basic(ls["token"]))       # replays: no change
    assert count_examples(service, pid) == 1


def test_tasks_round_trip_in_label_studio_json(client, ls, service, breast):
    x = breast.data.X_train
    tasks = [{"id": 300 + i, "data": {"row": dict(zip(FEATURES, map(float, x[i])))},
              "annotations": [{"result": [{"from_name": "diagnosis", "to_name": "row",
                                           "type": "choices",
                                           "value": {"choices": [PROJECT["classes"][i % 2]]}}]}]}
             for i in range(5)]
    answer = client.post(f"{ls['url']}/import", json=tasks, headers=basic(ls["token"]))
    assert answer.status_code == 201, answer.json
    exported = client.get(f"{ls['url']}/export", headers=basic(ls["token"])).json
    assert [t["data"]["cincer_external_id"] for t in exported] == [f"ls-task-{300 + i}"
                                                                   for i in range(5)]
    for task, back in zip(tasks, exported):
        assert back["annotations"][0]["result"][0]["value"] == \
            task["annotations"][0]["result"][0]["value"]
        assert np.allclose([back["data"]["row"][n] for n in FEATURES],
                           [task["data"]["row"][n] for n in FEATURES], atol=1e-5)
    bad = [dict(tasks[0], annotations=[])]
    assert_error(client.post(f"{ls['url']}/import", json=bad, headers=basic(ls["token"])), 422)

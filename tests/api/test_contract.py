"""The contract over HTTP: replays, idempotency keys, class names, skip and correct."""
import threading

from .conftest import ADMIN, assert_error, batch, bearer


def examples_url(pid):
    return f"/api/v1/projects/{pid}/examples"


def test_a_retried_ingest_is_a_replay(client, project, breast):
    pid, admin = project["id"], bearer(ADMIN)
    body = batch(breast, 0, 10)
    first = client.post(examples_url(pid), json=body, headers=admin)
    again = client.post(examples_url(pid), json=body, headers=admin)
    assert first.status_code == again.status_code == 202
    assert [i["id"] for i in again.json["items"]] == [i["id"] for i in first.json["items"]]
    assert {i["outcome"] for i in again.json["items"]} == {"replayed"}
    assert client.get(examples_url(pid), headers=admin).json["total"] == 10
    clash = {"items": [dict(body["items"][0], x=body["items"][1]["x"])]}
    assert_error(client.post(examples_url(pid), json=clash, headers=admin), 409, "conflict")


def test_idempotency_key_returns_the_first_answer(client, project, breast):
    pid, admin = project["id"], bearer(ADMIN)
    body = {"items": [dict(item, external_id=None) for item in batch(breast, 0, 5)["items"]]}
    keyed = {**admin, "Idempotency-Key": "batch-0001"}
    first = client.post(examples_url(pid), json=body, headers=keyed)
    again = client.post(examples_url(pid), json=body, headers=keyed)
    assert first.status_code == again.status_code == 202
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    assert client.get(examples_url(pid), headers=admin).json["total"] == 5
    other = {"items": body["items"][:2]}
    assert_error(client.post(examples_url(pid), json=other, headers=keyed), 409, "conflict")
    assert_error(client.post(examples_url(pid), json=body,
                             headers={**admin, "Idempotency-Key": "a\x01b"}), 422)
    # Concurrent twins with one key store the batch once.
    twins = {**admin, "Idempotency-Key": "batch-0002"}
    fresh = {"items": [dict(item, external_id=None) for item in batch(breast, 5, 8)["items"]]}
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(
        client.application.test_client().post(examples_url(pid), json=fresh, headers=twins)))
        for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [202, 202]


def test_class_names_skip_and_correct(client, streamed, breast):
    pid, tokens = streamed["id"], streamed["tokens"]
    alice = bearer(tokens["annotator"])
    url = f"/api/v1/projects/{pid}/queries"
    q = client.post(f"{url}/next", headers=alice).json
    assert q["example"]["label_name"] in ("malignant", "benign")
    skipped = client.post(f"{url}/{q['id']}/release", headers=alice)
    assert skipped.status_code == 200 and skipped.json["status"] == "open"
    q = client.post(f"{url}/next", headers=alice).json
    data = breast[0]
    truth = int(data.y_train[int(q["example"]["external_id"])])
    names = ["malignant", "benign"]
    missing = client.post(f"{url}/{q['id']}/answer", headers=alice,
                          json={"example_label": names[truth]})
    assert "counterexample_label" in assert_error(missing, 422)["details"]
    answered = client.post(f"{url}/{q['id']}/answer", headers=alice, json={
        "example_label": names[1 - truth], "counterexample_not_sure": True})
    assert answered.status_code == 200, answered.json
    assert answered.json["answer"]["example_label_name"] == names[1 - truth]
    fixed = client.post(f"{url}/{q['id']}/correct", headers=alice, json={
        "example_label": names[truth], "counterexample_not_sure": True,
        "reason": "misread the class"})
    assert fixed.status_code == 200, fixed.json
    history = client.get(f"/api/v1/projects/{pid}/examples/{q['example']['id']}",
                         headers=alice).json["history"]
    assert [h["why"] for h in history][-2:] == ["answer_example", "correction"]
    assert history[-1]["reason"] == "misread the class"
    assert history[-1]["new_label_name"] == names[truth]
    listed = client.get(f"{url}?status=answered", headers=alice).json
    assert [x["id"] for x in listed["items"]] == [q["id"]]

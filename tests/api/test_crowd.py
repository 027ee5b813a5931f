"""Crowds over HTTP: overlap settings, annotators, gold, sources, suspension."""
from .conftest import ADMIN, assert_error, bearer


def truth_of(breast, side):
    return None if side is None else int(breast[0].y_train[int(side["external_id"])])


def test_crowd_endpoints(client, streamed, breast):
    pid, tokens = streamed["id"], streamed["tokens"]
    admin, ann = bearer(ADMIN), bearer(tokens["annotator"])
    base = f"/api/v1/projects/{pid}"
    # out-of-range overlap settings: a 422, nothing stored
    for bad in ({"answers_per_query": 0}, {"answers_per_query": 3, "max_answers_per_query": 2},
                {"consensus_confidence": 2}, {"answers_per_query": 4}):
        assert_error(client.patch(base, json={"crowd": bad}, headers=admin), 422)
    assert client.get(base, headers=admin).get_json()["crowd"]["answers_per_query"] == 1
    changed = client.patch(base, json={"crowd": {"answers_per_query": 2}}, headers=admin)
    assert changed.status_code == 200 and changed.get_json()["crowd"] == {
        "answers_per_query": 2, "max_answers_per_query": 3, "consensus_confidence": 0.9,
        "gold_share": 0.05, "min_annotator_accuracy": 0.7}

    q = client.post(f"{base}/queries/next", headers=ann).get_json()
    assert q["status"] == "collecting" and q["lease_expires_at"] is not None
    answer = {"example_label": truth_of(breast, q["example"]),
              "counterexample_label": truth_of(breast, q["counterexample"])}
    done = client.post(f"{base}/queries/{q['id']}/answer", json=answer, headers=ann)
    assert done.status_code == 200 and done.get_json()["status"] == "collecting"

    listed = client.get(f"{base}/annotators", headers=admin).get_json()
    [me] = listed["items"]
    assert me["answers"] == 1 and me["flagged"] is False and me["median_seconds"] >= 0
    assert_error(client.get(f"{base}/annotators", headers=ann), 403)

    # gold: marked by the owner, listed; unknown ids are a 422
    examples = client.get(f"{base}/examples?status=accepted&limit=3",
                          headers=admin).get_json()["items"]
    ids = [e["id"] for e in examples]
    marked = client.post(f"{base}/gold", json={"example_ids": ids}, headers=admin)
    assert marked.status_code == 200 and marked.get_json()["total"] == 3
    assert client.get(f"{base}/gold", headers=admin).get_json()["total"] == 3
    assert_error(client.post(f"{base}/gold", json={"example_ids": [10**12]}, headers=admin),
                 422)
    assert_error(client.post(f"{base}/gold", json={"example_ids": ids}, headers=ann), 403)

    sources = client.get(f"{base}/sources", headers=admin).get_json()
    assert [s["source"] for s in sources["items"]] == ["test"]
    assert sources["items"][0]["examples"] > 0 and sources["proposals"] == []
    assert_error(client.post(f"{base}/sources/relabel", json={
        "source": "test", "from_label": 0, "to_label": 1}, headers=admin), 422)

    # a suspended annotator: leases and answers are 403; restore works once
    url = f"{base}/annotators/{me['id']}"
    assert client.post(f"{url}/suspend", headers=admin).get_json()["suspended"] is True
    assert_error(client.post(f"{url}/suspend", headers=admin), 409)
    assert_error(client.post(f"{base}/queries/next", headers=ann), 403)
    assert_error(client.post(f"{base}/queries/{q['id']}/answer", json=answer, headers=ann),
                 403)
    assert client.post(f"{url}/restore", headers=admin).get_json()["suspended"] is False

    only_their_own_votes_and_one_answer(client, base, ann, q, answer)


def only_their_own_votes_and_one_answer(client, base, ann, q, truth):
    """A second annotator answers the collecting query ``ann`` answered with ``truth``:
    each reads their own vote only (example history, query, query list, export), an admin
    reads both. A retry with the first request's Idempotency-Key gets the stored response;
    any other second answer is a 409 that changes nothing."""
    admin = bearer(ADMIN)
    client.patch(base, json={"crowd": {"gold_share": 0.0}}, headers=admin)
    bob = bearer(client.post(f"{base}/tokens", json={"role": "annotator", "name": "bob"},
                             headers=admin).get_json()["token"])
    assert client.post(f"{base}/queries/next", headers=bob).get_json()["id"] == q["id"]
    other = {**truth, "example_label": 1 - truth["example_label"]}
    url = f"{base}/queries/{q['id']}/answer"
    keyed = {**bob, "Idempotency-Key": "bob-1"}
    first = client.post(url, json=other, headers=keyed)
    assert first.status_code == 200, first.get_json()
    status = first.get_json()["status"]

    def state():
        history = client.get(f"{base}/examples/{q['example']['id']}", headers=admin)
        return history.get_json()["history"], client.get(f"{base}/annotators",
                                                         headers=admin).get_json()
    before = state()
    retry = client.post(url, json=other, headers=keyed)            # bob's own retry
    assert retry.status_code == 200 and retry.get_json() == first.get_json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    for again in (other, truth):                                   # a second answer
        refused = assert_error(client.post(url, json=again, headers=bob), 409, "conflict")
        assert refused["details"] == {"query_id": q["id"], "status": status,
                                      "already_answered": True}
    assert state() == before

    def votes(headers):
        history = client.get(f"{base}/examples/{q['example']['id']}",
                             headers=headers).get_json()["history"]
        return sorted((h["actor"], h["reason"].split(" ")[1]) for h in history
                      if h["why"] == "crowd_answer")
    names = ["malignant", "benign"]
    mine, bobs = names[truth["example_label"]], names[other["example_label"]]
    assert votes(ann) == [("annotator", mine)]
    assert votes(bob) == [("bob", bobs)]
    assert votes(admin) == sorted([("annotator", mine), ("bob", bobs)])
    for headers, name, label in ((ann, "annotator", truth), (bob, "bob", other)):
        seen = client.get(f"{base}/queries/{q['id']}", headers=headers).get_json()["answer"]
        assert seen["annotator"] == name and seen["example_label"] == label["example_label"]
        listed = client.get(f"{base}/queries?status={status}&limit=500",
                            headers=headers).get_json()["items"]
        assert [x["answer"]["annotator"] for x in listed if x["id"] == q["id"]] == [name]
        export = client.get(f"{base}/export?format=jsonl", headers=headers).get_data(True)
        assert ('"bob"' in export) == (name == "bob")

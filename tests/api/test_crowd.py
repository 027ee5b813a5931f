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

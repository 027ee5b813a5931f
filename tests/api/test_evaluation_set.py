"""The evaluation set over HTTP: ``split`` on ingest, ``?status=evaluation|holdout`` on the
examples list, the cleaning curve in ``/stats`` and ``/overview/curve.png``."""
import numpy as np
import pytest

from .conftest import STREAMED, assert_error, batch, bearer

N_GOLD = 40


def gold(breast, start=0, stop=N_GOLD):
    data = breast.data
    return {"items": [{"external_id": f"gold-{i}", "x": np.asarray(data.X_test[i]).tolist(),
                       "label": int(data.y_test[i]), "split": "evaluation"}
                      for i in range(start, stop)]}


@pytest.mark.parametrize("status", ["evaluation", "holdout", "pending", "removed"])
def test_the_examples_list_takes_every_status(client, project, status):
    answer = client.get(f"/api/v1/projects/{project['id']}/examples?status={status}",
                        headers=bearer(project["tokens"]["viewer"]))
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"items": [], "total": 0}


def test_an_unknown_status_or_split_is_a_422(client, project, breast):
    pid = project["id"]
    answer = client.get(f"/api/v1/projects/{pid}/examples?status=gold",
                        headers=bearer(project["tokens"]["viewer"]))
    assert_error(answer, 422, "validation_error")
    body = gold(breast, 0, 2)
    body["items"][1]["split"] = "test"
    error = assert_error(client.post(f"/api/v1/projects/{pid}/examples", json=body,
                                     headers=bearer(project["tokens"]["ingest"])), 422)
    assert "items.1.split" in str(error["details"])


def test_the_evaluation_set_and_the_cleaning_curve(client, project, breast):
    pid, tokens = project["id"], project["tokens"]
    ingest = client.post(f"/api/v1/projects/{pid}/examples", json=gold(breast),
                         headers=bearer(tokens["ingest"]))
    assert ingest.status_code == 202, ingest.get_json()
    assert {i["status"] for i in ingest.get_json()["items"]} == {"evaluation"}
    streamed = client.post(f"/api/v1/projects/{pid}/examples", json=batch(breast, 0, STREAMED),
                           headers=bearer(tokens["ingest"]))
    assert streamed.status_code == 202
    listed = client.get(f"/api/v1/projects/{pid}/examples?status=evaluation&limit=100",
                        headers=bearer(tokens["viewer"])).get_json()
    assert listed["total"] == N_GOLD
    assert all(e["confirmed"] and e["status"] == "evaluation" for e in listed["items"])
    assert [e["label"] for e in listed["items"]] == breast.data.y_test[:N_GOLD].tolist()
    # answer every query from the truth: retrains follow, each scored on the gold set
    truth = breast.data.y_train
    while True:
        leased = client.post(f"/api/v1/projects/{pid}/queries/next",
                             headers=bearer(tokens["annotator"]))
        if leased.status_code == 204:
            break
        assert leased.status_code == 200, leased.get_json()
        q = leased.get_json()
        body = {"example_label": int(truth[int(q["example"]["external_id"])])}
        if q["counterexample"] is not None:
            body["counterexample_label"] = int(truth[int(q["counterexample"]["external_id"])])
        done = client.post(f"/api/v1/projects/{pid}/queries/{q['id']}/answer", json=body,
                           headers=bearer(tokens["annotator"]))
        assert done.status_code == 200, done.get_json()
    stats = client.get(f"/api/v1/projects/{pid}/stats", headers=bearer(tokens["viewer"]))
    assert stats.status_code == 200
    stats = stats.get_json()
    assert stats["examples"]["evaluation"] == N_GOLD
    curve = stats["cleaning_curve"]
    assert len(curve) == stats["model_version"] >= 2
    for point in curve:
        assert point["status"] == "ok" and point["n"] == N_GOLD
        assert 0 <= point["accuracy"] <= 1 and 0 <= point["f1_macro"] <= 1
        assert point["log_loss"] > 0 and 0 <= point["ece"] <= 1
        assert isinstance(point["answers"], int) and "T" in point["created_at"]
    assert curve[0]["answers"] == 0 and curve[-1]["answers"] > 0
    assert stats["evaluation"]["version"] == curve[-1]["version"]
    assert stats["evaluation"]["per_class"] == np.bincount(breast.data.y_test[:N_GOLD],
                                                           minlength=2).tolist()
    png = client.get(f"/api/v1/projects/{pid}/overview/curve.png",
                     headers=bearer(tokens["viewer"]))
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert png.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert client.get(f"/api/v1/projects/{pid}/overview/curve.png").status_code == 401

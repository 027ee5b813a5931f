"""``GET /projects/{pid}/export`` and ``POST /projects/{pid}/import``: an export imported into
a new project reproduces labels, statuses, inputs and history (issue 19 §2); import is for
admins, all or nothing, and refuses external ids the project already holds."""
import json

from .conftest import ADMIN, PROJECT, assert_error, bearer


def export_lines(client, pid):
    response = client.get(f"/api/v1/projects/{pid}/export?format=jsonl", headers=bearer(ADMIN))
    assert response.status_code == 200 and response.mimetype == "application/x-ndjson"
    return [json.loads(line) for line in response.get_data(True).splitlines()]


def test_export_import_round_trip(client, streamed):
    pid = streamed["id"]
    annotator = bearer(streamed["tokens"]["annotator"])
    query = client.post(f"/api/v1/projects/{pid}/queries/next", headers=annotator).get_json()
    example = query["example"]
    client.post(f"/api/v1/projects/{pid}/queries/{query['id']}/answer", headers=annotator,
                json={"example_label": 1 - example["label"],
                      **({"counterexample_not_sure": True} if query["counterexample"]
                         else {})}).get_json()
    gold = [e["id"] for e in client.get(f"/api/v1/projects/{pid}/examples?status=accepted"
                                        "&limit=2", headers=bearer(ADMIN)).get_json()["items"]]
    client.post(f"/api/v1/projects/{pid}/gold", json={"example_ids": gold},
                headers=bearer(ADMIN))
    records = export_lines(client, pid)
    assert [a["name"] for a in records[0]["crowd"]["annotators"]] == ["annotator"]
    answered = next(r for r in records if r["id"] == example["id"])
    assert answered["label_name"] == PROJECT["classes"][1 - example["label"]]
    assert answered["status"] in ("reviewed", "accepted") and answered["confirmed"] is True
    assert answered["history"][-1]["why"] == "answer_example"
    assert answered["changed_by"] == answered["history"][-1]["actor"]

    target = client.post("/api/v1/projects", json={**PROJECT, "name": "copy"},
                         headers=bearer(ADMIN)).get_json()["id"]
    path = f"/api/v1/projects/{target}/import"
    assert_error(client.post(path, json={"items": records},
                             headers=bearer(streamed["tokens"]["ingest"])), 403, "forbidden")
    response = client.post(path, json={"items": records}, headers=bearer(ADMIN))
    assert response.status_code == 201, response.get_json()
    result = response.get_json()
    assert result["imported"] == len(records)
    assert result["statuses"] == {s: n for s, n in
                                  client.get(f"/api/v1/projects/{pid}/stats",
                                             headers=bearer(ADMIN)).get_json()
                                  ["examples"].items() if n}
    copied = {r["external_id"]: r for r in export_lines(client, target)}
    keys = ("label", "label_name", "original_label", "status", "confirmed", "source", "x",
            "changed_by", "changed_at", "created_at")
    for r in records:
        assert {k: copied[r["external_id"]][k] for k in keys} == {k: r[k] for k in keys}
        assert len(copied[r["external_id"]]["history"]) == len(r["history"])
    # the annotators' table and the gold set come along (tokens do not: they are secrets)
    assert result["answers"] == 1 and result["annotators"] == 1

    def annotators_of(project):
        listed = client.get(f"/api/v1/projects/{project}/annotators",
                            headers=bearer(ADMIN)).get_json()
        return [{k: v for k, v in a.items() if k != "id"} for a in listed["items"]], \
            listed["krippendorff_alpha"]

    def gold_of(project):
        listed = client.get(f"/api/v1/projects/{project}/gold", headers=bearer(ADMIN))
        return {copied_or(e["id"], project): e["label"] for e in listed.get_json()["items"]}

    def copied_or(eid, project):
        return client.get(f"/api/v1/projects/{project}/examples/{eid}",
                          headers=bearer(ADMIN)).get_json()["external_id"]
    assert annotators_of(target) == annotators_of(pid)
    assert gold_of(target) == gold_of(pid) and len(gold_of(pid)) == 2
    assert streamed["tokens"]["annotator"] not in "".join(map(json.dumps, records))

    again = client.post(path, json={"items": records[:2]}, headers=bearer(ADMIN))
    assert_error(again, 409, "conflict")
    bad = client.post(path, json={"items": [{**records[0], "external_id": "new",
                                             "status": "lost"}]}, headers=bearer(ADMIN))
    assert "items.0.status" in assert_error(bad, 422, "validation_error")["details"]
    assert_error(client.post(path, json={"items": []}, headers=bearer(ADMIN)), 422)

"""audits: run through the core orchestration, store the report, enqueue suspects."""
import numpy as np
import pytest

from cincer_service.service import (BadInput, Conflict, NotFound, audits, examples,
                                    queries)
from tests.support.service import items, new_project


def test_audit_ranks_planted_errors_and_enqueues(ctx, stream):
    data, noisy, corrupted = stream
    pid = new_project(ctx, bootstrap_size=200)
    examples.ingest(ctx, pid, items(stream, 0, 200))
    audit = audits.create_audit(ctx, pid, ["self_influence", "margin", "near_duplicates"], 20)
    audit = audits.get_audit(ctx, pid, audit["id"])
    assert audit["status"] == "done" and audit["progress"] == 1.0
    suspects = [int(examples.get_example(ctx, pid, s["example_id"])["external_id"])
                for s in audit["suspects"]]
    assert len(suspects) == 20
    assert np.mean(corrupted[suspects]) > 2 * np.mean(corrupted[:200])
    assert set(audit["suspects"][0]["scores"]) == {"self_influence", "margin"}
    enqueued = audits.enqueue_audit(ctx, pid, audit["id"], 5)
    assert enqueued["enqueued"] == 5
    q = queries.get_query(ctx, pid, enqueued["query_ids"][0])
    assert q["origin"] == "audit" and q["status"] == "open"
    assert q["counterexample"] is None or q["counterexample"]["id"] != q["example"]["id"]
    again = audits.enqueue_audit(ctx, pid, audit["id"], 5)
    assert again["enqueued"] == 0                        # already under review


def test_audit_errors(ctx, stream):
    pid = new_project(ctx)
    with pytest.raises(Conflict):                        # no model yet
        audits.create_audit(ctx, pid, ["margin"], 5)
    examples.ingest(ctx, pid, items(stream, 0, 60))
    with pytest.raises(BadInput):
        audits.create_audit(ctx, pid, ["no_such_detector"], 5)
    with pytest.raises(NotFound):
        audits.get_audit(ctx, pid, 999)

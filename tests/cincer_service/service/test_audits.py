"""audits: run through the core orchestration, store the report, enqueue suspects."""
import numpy as np
import pytest

from cincer_service.service import BadInput, Conflict, NotFound, audits, examples, queries
from cincer_service.spec import bootstrap_audit_size
from tests.support.service import items, new_project


def test_audit_ranks_planted_errors_and_enqueues(ctx, stream):
    data, noisy, corrupted = stream
    pid = new_project(ctx, bootstrap_size=200)
    examples.ingest(ctx, pid, items(stream, 0, 200))
    audit = audits.create_audit(ctx, pid, ["self_influence", "margin", "near_duplicates"], 60)
    audit = audits.get_audit(ctx, pid, audit["id"])
    assert audit["status"] == "done" and audit["progress"] == 1.0
    suspects = [int(examples.get_example(ctx, pid, s["example_id"])["external_id"])
                for s in audit["suspects"][:20]]
    assert len(audit["suspects"]) == 60
    assert np.mean(corrupted[suspects]) > 2 * np.mean(corrupted[:200])
    assert set(audit["suspects"][0]["scores"]) == {"self_influence", "margin"}
    # The first model already queued the bootstrap audit's suspects; the rest are new, and
    # no example already shown by an open pair (either side) is asked about again.
    busy = {side["id"] for q in queries.list_queries(ctx, pid, limit=500)["items"]
            if q["status"] in ("computing", "open", "leased")
            for side in (q["example"], q["counterexample"]) if side}
    fresh = [s["example_id"] for s in audit["suspects"] if s["example_id"] not in busy]
    enqueued = audits.enqueue_audit(ctx, pid, audit["id"])
    assert enqueued["enqueued"] == len(fresh) > 0
    q = queries.get_query(ctx, pid, enqueued["query_ids"][0])
    assert q["origin"] == "audit" and q["status"] == "open"
    assert q["example"]["id"] == fresh[0]
    assert q["counterexample"] is None or q["counterexample"]["id"] != q["example"]["id"]
    again = audits.enqueue_audit(ctx, pid, audit["id"])
    assert again["enqueued"] == 0                        # already under review


def test_first_model_audits_the_bootstrap_set(ctx, stream):
    """The bootstrap is never screened: its audit's top suspects become queries."""
    data, noisy, corrupted = stream
    pid = new_project(ctx, bootstrap_size=200)
    examples.ingest(ctx, pid, items(stream, 0, 200))
    found = queries.list_queries(ctx, pid, limit=500)["items"]
    assert len(found) == bootstrap_audit_size(200) == 40
    assert {q["origin"] for q in found} == {"bootstrap"}
    assert {q["status"] for q in found} == {"open"}
    flagged = [int(q["example"]["external_id"]) for q in found]
    assert np.mean(corrupted[flagged]) > 2 * np.mean(corrupted[:200])


def test_audit_errors(ctx, stream):
    pid = new_project(ctx)
    with pytest.raises(Conflict):                        # no model yet
        audits.create_audit(ctx, pid, ["margin"], 5)
    examples.ingest(ctx, pid, items(stream, 0, 60))
    with pytest.raises(BadInput):
        audits.create_audit(ctx, pid, ["no_such_detector"], 5)
    with pytest.raises(NotFound):
        audits.get_audit(ctx, pid, 999)

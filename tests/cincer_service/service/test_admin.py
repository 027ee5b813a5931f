"""Admin use cases: list and revoke tokens, change a project's settings (with history),
list audits, delete a project with all its data."""
import pytest
from sqlalchemy import func, select

from cincer_service.service import (
    BadInput,
    Conflict,
    NotFound,
    Unauthorized,
    access,
    audits,
    examples,
    projects,
    queries,
)
from cincer_service.service.store import (
    Audit,
    Base,
    IdempotencyKey,
    JobBackoff,
    WebhookDelivery,
    WebhookEndpoint,
)
from tests.support.service import BOOTSTRAP, annotator, items, new_project


# -- tokens ----------------------------------------------------------------------------------
def test_list_tokens_never_shows_secrets(ctx):
    pid, other = new_project(ctx), new_project(ctx, name="other")
    access.ensure_admin_token(ctx, None)
    minted = [access.create_token(ctx, pid, role, role) for role in ("viewer", "annotator")]
    access.create_token(ctx, other, "viewer", "elsewhere")
    listed = access.list_tokens(ctx, pid)
    assert [t["id"] for t in listed] == [t["id"] for t in minted]
    assert listed[0] == {"id": minted[0]["id"], "project_id": pid, "role": "viewer",
                         "name": "viewer", "created_at": minted[0]["created_at"],
                         "revoked": False}
    assert all(set(t) == {"id", "project_id", "role", "name", "created_at", "revoked"}
               for t in listed)
    with pytest.raises(NotFound):
        access.list_tokens(ctx, 999)


def test_revoked_token_stops_authenticating_at_once(ctx):
    pid = new_project(ctx)
    keep = access.create_token(ctx, pid, "viewer", "keep")
    gone = access.create_token(ctx, pid, "ingest", "gone")
    assert access.authenticate(ctx, gone["token"]).token_id == gone["id"]
    with ctx.store.session() as s:
        s.add(IdempotencyKey(token_id=gone["id"], key="k", fingerprint="f", status_code=202))
    revoked = access.revoke_token(ctx, pid, gone["id"])
    assert revoked["revoked"] is True and revoked["id"] == gone["id"]
    with pytest.raises(Unauthorized):
        access.authenticate(ctx, gone["token"])
    assert access.authenticate(ctx, keep["token"]).name == "keep"
    assert [t["revoked"] for t in access.list_tokens(ctx, pid)] == [False, True]
    with ctx.store.session() as s:
        assert s.scalar(select(func.count(IdempotencyKey.id))) == 0
    # The id stays taken: a new token never inherits the revoked one's leases or answers.
    assert access.create_token(ctx, pid, "viewer", "new")["id"] > gone["id"]
    with pytest.raises(Conflict):
        access.revoke_token(ctx, pid, gone["id"])


def test_revoke_errors(ctx):
    pid, other = new_project(ctx), new_project(ctx, name="other")
    admin = access.authenticate(ctx, access.ensure_admin_token(ctx, None))
    foreign = access.create_token(ctx, other, "viewer", "v")
    with pytest.raises(NotFound):
        access.revoke_token(ctx, pid, foreign["id"])          # another project's token
    with pytest.raises(NotFound):
        access.revoke_token(ctx, pid, admin.token_id)         # the global admin token
    with pytest.raises(NotFound):
        access.revoke_token(ctx, pid, 12345)
    with pytest.raises(NotFound):
        access.revoke_token(ctx, 999, foreign["id"])


def test_revoking_an_annotator_reopens_its_leased_query(ctx, stream):
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP))   # first model: bootstrap queries
    alice, bob = annotator(ctx, pid, "alice"), annotator(ctx, pid, "bob")
    leased = queries.lease_next_query(ctx, pid, alice)
    assert leased is not None
    access.revoke_token(ctx, pid, alice.token_id)
    assert queries.get_query(ctx, pid, leased["id"])["status"] == "open"
    assert queries.lease_next_query(ctx, pid, bob)["id"] == leased["id"]


# -- settings --------------------------------------------------------------------------------
def test_update_records_each_change(ctx):
    pid = new_project(ctx)
    before = projects.get_project(ctx, pid)
    after = projects.update_project(ctx, pid, {"threshold": 0.5, "strategy": "top_fisher",
                                               "retrain": {"every_n_answers": 7}}, "alice")
    assert after["threshold"] == 0.5
    assert after["retrain"] == {"mode": "warm", "every_n_answers": 7}
    assert projects.get_project(ctx, pid) == after
    projects.update_project(ctx, pid, {"damping": 0.25}, "bob")
    projects.update_project(ctx, pid, {"damping": 0.25}, "carol")     # no change: no event
    history = projects.project_history(ctx, pid)
    assert [e["actor"] for e in history] == ["alice", "bob"]
    assert history[0]["changes"] == {
        "threshold": {"old": before["threshold"], "new": 0.5},
        "retrain": {"old": {"mode": "warm", "every_n_answers": 3},
                    "new": {"mode": "warm", "every_n_answers": 7}}}
    assert history[1]["changes"] == {"damping": {"old": before["damping"], "new": 0.25}}
    assert history[0]["at"] <= history[1]["at"] and history[0]["project_id"] == pid


def test_update_errors(ctx, stream):
    pid = new_project(ctx)
    for bad in ({}, {"name": "x"}, {"classes": ["a", "b"]}, {"input_shape": [3]},
                {"model": {"kind": "lr"}}, {"input_kind": "text"}, {"holdout_share": 0.2},
                {"colour": "red"}):
        with pytest.raises(BadInput):
            projects.update_project(ctx, pid, bad, "admin")
    with pytest.raises(NotFound):
        projects.update_project(ctx, 999, {"threshold": 0.3}, "admin")
    with pytest.raises(NotFound):
        projects.project_history(ctx, 999)
    assert projects.project_history(ctx, pid) == []
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP))   # the first model exists now
    with pytest.raises(Conflict):
        projects.update_project(ctx, pid, {"bootstrap_size": 10}, "admin")
    projects.update_project(ctx, pid, {"bootstrap_size": BOOTSTRAP}, "admin")  # unchanged


def test_lowering_bootstrap_size_starts_the_first_model(ctx, stream):
    pid = new_project(ctx, bootstrap_size=200)
    examples.ingest(ctx, pid, items(stream, 0, 80))
    assert projects.get_project(ctx, pid)["state"] == "collecting_bootstrap"
    projects.update_project(ctx, pid, {"bootstrap_size": 150}, "admin")
    assert projects.get_project(ctx, pid)["state"] == "collecting_bootstrap"
    updated = projects.update_project(ctx, pid, {"bootstrap_size": 80}, "admin")
    assert updated["bootstrap_size"] == 80
    project = projects.get_project(ctx, pid)              # the inline retrain ran
    assert project["state"] == "ready" and project["model_version"] == 1


# -- audits ----------------------------------------------------------------------------------
def test_list_audits_newest_first(ctx):
    pid, other = new_project(ctx), new_project(ctx, name="other")
    with ctx.store.session() as s:
        for project in (pid, pid, other, pid):
            s.add(Audit(project_id=project, detectors=["margin"], top_k=5, status="queued"))
    page = audits.list_audits(ctx, pid)
    assert page["total"] == 3 and [a["id"] for a in page["items"]] == [4, 2, 1]
    assert page["items"][0] == audits.get_audit(ctx, pid, 4)
    assert [a["id"] for a in audits.list_audits(ctx, pid, offset=1, limit=1)["items"]] == [2]
    assert audits.list_audits(ctx, other)["total"] == 1
    with pytest.raises(NotFound):
        audits.list_audits(ctx, 999)


# -- delete ----------------------------------------------------------------------------------
def _counts(ctx) -> dict:
    with ctx.store.session() as s:
        return {table.name: s.execute(select(func.count()).select_from(table)).scalar_one()
                for table in Base.metadata.sorted_tables}


def test_delete_project_removes_all_its_data_and_nothing_else(ctx, stream):
    keep = new_project(ctx, name="keep")
    keep_token = access.create_token(ctx, keep, "viewer", "v")
    examples.ingest(ctx, keep, items(stream, 0, 10))
    baseline = _counts(ctx)

    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 20))   # model, queries, audit
    secret = access.create_token(ctx, pid, "annotator", "ann")["token"]
    ann = access.authenticate(ctx, secret)
    q = queries.lease_next_query(ctx, pid, ann)
    queries.answer_query(ctx, pid, q["id"], 0, 0 if q["counterexample"] else None, ann)
    projects.update_project(ctx, pid, {"threshold": 0.4}, "admin")
    with ctx.store.session() as s:
        endpoint = WebhookEndpoint(project_id=pid, url="http://x.invalid/", secret="s",
                                   events=["*"])
        s.add(endpoint)
        s.flush()
        s.add(WebhookDelivery(endpoint_id=endpoint.id, message_id="m", event="e", payload={},
                              status="pending"))
        s.add(IdempotencyKey(token_id=ann.token_id, key="k", fingerprint="f",
                             status_code=200))
        s.add(JobBackoff(name="retrain", arg=str(pid), project_id=pid, failures=1))
        s.add(JobBackoff(name="overview", arg=str(pid), project_id=None, failures=1))
    full = _counts(ctx)
    for table in ("examples", "label_events", "queries", "model_versions", "audits", "tokens",
                  "project_events", "webhook_endpoints", "webhook_deliveries", "job_backoff",
                  "idempotency_keys"):
        assert full[table] > baseline[table], table

    removed = projects.delete_project(ctx, pid)
    assert removed["projects"] == 1 and removed["examples"] == BOOTSTRAP + 20
    assert _counts(ctx) == baseline
    with pytest.raises(NotFound):
        projects.get_project(ctx, pid)
    with pytest.raises(Unauthorized):
        access.authenticate(ctx, secret)
    assert access.authenticate(ctx, keep_token["token"]).project_id == keep
    assert examples.list_examples(ctx, keep)["total"] == 10
    with pytest.raises(NotFound):
        projects.delete_project(ctx, pid)

"""``service.label_studio`` on SQLite and PostgreSQL (no model is trained here): setup and
its config checks, annotation events idempotent by task and annotation id under concurrent
replays, deletions, and the sync job's bookkeeping against a fake Label Studio."""
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from cincer_service.service import (
    BadInput,
    Settings,
    access,
    build_context,
    examples,
    jobs,
    label_studio,
    projects,
    runner,
)
from cincer_service.service.label_studio import LabelStudioAnnotation, LabelStudioLink
from cincer_service.service.store import Example, LabelEvent
from cincer_service.spec import ProjectSpec
from tests.support.fake_label_studio import FakeLabelStudio

CONFIG = ('<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">'
          '<Choice value="neg"/><Choice value="pos"/></Choices></View>')


@pytest.fixture
def ls(database_url, tmp_path, monkeypatch):
    ctx = build_context(Settings(data_dir=str(tmp_path), database_url=database_url))
    ctx.set_dispatcher(runner.inline_dispatcher(ctx))
    pid = projects.create_project(ctx, ProjectSpec.build(
        name="reviews", classes=["neg", "pos"], input_kind="text", input_shape=[64],
        model={"kind": "lr", "max_epochs": 5}, bootstrap_size=1000))["id"]
    principal = access.authenticate(ctx, access.create_token(ctx, pid, "admin", "ls")["token"])
    fake = FakeLabelStudio(3, CONFIG)
    monkeypatch.setattr(label_studio, "client_factory", lambda host, token: fake)
    answer = label_studio.setup(ctx, pid, principal, {
        "project": "3.1712345678", "schema": CONFIG, "hostname": "http://ls",
        "access_token": "t"}, backend_url="http://us/integrations/label-studio/1",
        auth_header="Basic eDp5")
    assert answer == {"model_version": f"cincer-{pid}-v0"}
    return ctx, pid, principal, fake


def event(task_id, annotation_id, label, text="great film", action="ANNOTATION_CREATED"):
    return {"action": action, "task": {"id": task_id, "data": {"text": text}},
            "annotation": {"id": annotation_id, "task": task_id, "completed_by": 3,
                           "result": [{"from_name": "sentiment", "to_name": "text",
                                       "type": "choices", "value": {"choices": [label]}}]}}


def counts(ctx, pid):
    with ctx.store.session() as s:
        return (s.scalar(select(func.count(Example.id)).where(Example.project_id == pid)),
                s.scalar(select(func.count(LabelStudioAnnotation.id))),
                s.scalar(select(func.count(LabelEvent.id))))


def test_concurrent_replays_store_one_example_and_one_annotation(ls):
    ctx, pid, principal, fake = ls
    body = event(11, 21, "pos")
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda _: label_studio.handle_webhook(
            ctx, pid, principal, body)["outcome"], range(8)))
    assert outcomes.count("created") == 1 and set(outcomes) == {"created", "replayed"}
    assert counts(ctx, pid) == (1, 1, 1)
    label_studio.handle_webhook(ctx, pid, principal, event(11, 21, "neg", action="ANNOTATION_UPDATED"))
    assert counts(ctx, pid) == (1, 1, 2)
    label_studio.handle_webhook(ctx, pid, principal, {"action": "ANNOTATIONS_DELETED",
                                                       "annotations": [{"id": 21}]})
    page = examples.list_examples(ctx, pid)["items"]
    assert [(e["external_id"], e["status"]) for e in page] == [("ls-task-11", "removed")]


def test_bad_input_stores_nothing(ls):
    ctx, pid, principal, fake = ls
    with pytest.raises(BadInput, match="not in the label config"):
        label_studio.handle_webhook(ctx, pid, principal, event(1, 2, "meh"))
    no_text = event(1, 2, "pos")
    no_text["task"]["data"] = {"body": "x"}
    with pytest.raises(BadInput, match="no data field 'text'"):
        label_studio.handle_webhook(ctx, pid, principal, no_text)
    with pytest.raises(BadInput, match="multi-label"):
        label_studio.setup(ctx, pid, principal, {"project": "3.1", "schema": CONFIG.replace(
            "<Choices ", '<Choices choice="multiple" ')})
    assert counts(ctx, pid) == (0, 0, 0)
    with ctx.store.session() as s:           # the failed setup left the link as it was
        assert s.scalar(select(LabelStudioLink.config))["from_name"] == "sentiment"


def test_sync_pulls_once_and_the_reconciler_finds_due_links(ls):
    ctx, pid, principal, fake = ls
    fake.tasks_by_id[5] = {"id": 5, "project": 3, "data": {"text": "dull"}, "annotations": [
        event(5, 6, "neg")["annotation"]]}
    label_studio.request_sync(ctx, pid)
    assert counts(ctx, pid)[:2] == (1, 1)
    history = examples.get_example(ctx, pid, examples.list_examples(ctx, pid)["items"][0]["id"])
    assert history["history"][0]["actor"] == "label-studio:three@example.com"
    with ctx.store.session() as s:
        assert label_studio.unfinished(s, label_studio.utcnow()) == []
    assert label_studio.sync(ctx, pid)["ingested"] == 0          # not due: no pull
    assert jobs.by_name("label_studio_sync").run is label_studio.sync

"""Helpers that drive the service modules directly (no HTTP): a context on a temporary
SQLite file, a small breast project, ingest items and annotators answering from the truth."""
from cincer_service.service import (
    Settings,
    access,
    build_context,
    projects,
    queries,
    runner,
)
from cincer_service.spec import ProjectSpec

BOOTSTRAP = 60


def make_context(tmp_path, dispatcher="inline", **settings):
    """A context on ``tmp_path``; jobs run inline unless ``dispatcher`` is None."""
    ctx = build_context(Settings(data_dir=str(tmp_path), **settings))
    if dispatcher == "inline":
        ctx.set_dispatcher(runner.inline_dispatcher(ctx))
    return ctx


def new_project(ctx, **overrides) -> int:
    """A breast project (lr model, warm retrain every 3 answers) with ``overrides``."""
    values = {"name": "breast", "classes": ["malignant", "benign"], "input_shape": [30],
              "model": {"kind": "lr", "max_epochs": 60}, "bootstrap_size": BOOTSTRAP,
              "retrain": {"mode": "warm", "every_n_answers": 3}, **overrides}
    return projects.create_project(ctx, ProjectSpec.build(**values))["id"]


def items(stream, start, stop) -> list[dict]:
    """Ingest items ``start..stop`` of a ``(data, noisy, corrupted)`` stream."""
    data, noisy, _ = stream
    return [{"external_id": str(i), "x": data.X_train[i].tolist(), "label": int(noisy[i])}
            for i in range(start, stop)]


def annotator(ctx, pid, name="ann"):
    """The principal of a new annotator token."""
    return access.authenticate(ctx, access.create_token(ctx, pid, "annotator", name)["token"])


def true_answer(q, truth) -> tuple[int, int | None]:
    """The true labels of a query's example and counter-example (None when it has none)."""
    ce = q["counterexample"]
    return (int(truth[int(q["example"]["external_id"])]),
            None if ce is None else int(truth[int(ce["external_id"])]))


def answer_all(ctx, pid, truth, principal) -> list[dict]:
    """Lease and answer every open query with the true labels; the queries answered."""
    answered = []
    while (q := queries.lease_next_query(ctx, pid, principal)) is not None:
        queries.answer_query(ctx, pid, q["id"], *true_answer(q, truth), principal)
        answered.append(q)
    return answered

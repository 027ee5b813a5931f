"""The demo projects ``make run`` seeds on first start: scikit-learn's bundled digits as an
image project (8×8) and a text project of generated assistant utterances, both with 20%
random label noise, streamed after a bootstrap set.

Each also gets a clean evaluation set (``split: "evaluation"``): rows the stream never
shows (the digits' test split; utterances generated with another seed) with their TRUE
labels. Every model version is scored on it, so the demo's cleaning curve (``/stats``, the
overview's plot, ``python -m clients PID curve``) shows what the answers bought.

``python -m cincer_service.service.demo`` runs the demo's loop headless: it seeds the demo
in a temporary database with jobs run inline, answers the queries from the truth and prints
the cleaning curve of each project (``--png`` writes the digits project's plot)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..datasets import inject_noise, load_dataset, synthetic_intents
from ..spec import ModelSpec, ProjectSpec
from . import examples, projects
from .store import Project

DEMO_NAME = "demo-digits"
TEXT_DEMO_NAME = "demo-intents"
EVALUATION_PREFIX = "eval-"       # external ids of the evaluation set


@dataclass
class DemoData:
    """One demo project's rows: the stream's items and true labels (by external id) and
    its evaluation items (true labels)."""

    stream: list[dict]
    truth: dict[str, int]
    evaluation: list[dict]


def digits_data(n_examples: int = 600, noise: float = 0.2, seed: int = 0,
                n_evaluation: int = 300) -> DemoData:
    """The digits demo: the first ``n_examples`` training images with ``noise`` random
    label noise, and ``n_evaluation`` test images with their true labels."""
    data = load_dataset("digits", seed=seed)
    images = data.X_train[:n_examples].reshape(-1, 8, 8)
    truth = data.y_train[:n_examples]
    noisy, _ = inject_noise(truth, data.n_classes, noise, "random", seed=seed)
    held = data.X_test[:n_evaluation].reshape(-1, 8, 8)
    return DemoData(
        [{"external_id": str(i), "x": images[i].tolist(), "label": int(noisy[i]),
          "source": "demo"} for i in range(len(images))],
        {str(i): int(truth[i]) for i in range(len(images))},
        [{"external_id": f"{EVALUATION_PREFIX}{i}", "x": held[i].tolist(),
          "label": int(data.y_test[i]), "source": "demo-evaluation", "split": "evaluation"}
         for i in range(len(held))])


def intents_data(n_examples: int = 300, noise: float = 0.2, seed: int = 0,
                 n_evaluation: int = 150) -> tuple[DemoData, list[str]]:
    """The utterances demo (``n_examples`` with ``noise``; ``n_evaluation`` generated with
    the next seed, true labels) and the intent names."""
    texts, truth, names = synthetic_intents(n_examples, seed=seed)
    noisy, _ = inject_noise(truth, len(names), noise, "random", seed=seed)
    held, held_truth, _ = synthetic_intents(n_evaluation, seed=seed + 1)
    return DemoData(
        [{"external_id": str(i), "text": t, "label": names[noisy[i]], "source": "demo"}
         for i, t in enumerate(texts)],
        {str(i): int(truth[i]) for i in range(len(texts))},
        [{"external_id": f"{EVALUATION_PREFIX}{i}", "text": t,
          "label": names[held_truth[i]], "source": "demo-evaluation", "split": "evaluation"}
         for i, t in enumerate(held)]), names


def seed_demo(ctx, n_examples: int = 600, bootstrap_size: int = 150,
              noise: float = 0.2, seed: int = 0, text: bool = True,
              n_evaluation: int = 300) -> dict | None:
    """Create and fill the demo projects once; the digits project, or ``None`` when the
    demo already exists. ``text`` also seeds the utterances project. Each project's
    evaluation set (``n_evaluation`` digits, half as many utterances) goes in first."""
    with ctx.store.session() as s:
        if s.scalar(select(Project.id).where(Project.demo.is_(True))) is not None:
            return None
    digits = digits_data(n_examples, noise, seed, n_evaluation)
    spec = ProjectSpec(name=DEMO_NAME, classes=tuple(str(c) for c in range(10)),
                       input_shape=(8, 8), input_kind="image", model=ModelSpec(seed=seed),
                       bootstrap_size=bootstrap_size)
    project = projects.create_project(ctx, spec, demo=True)
    _ingest(ctx, project["id"], digits.evaluation)
    _ingest(ctx, project["id"], digits.stream)
    if text:
        utterances, names = intents_data(n_examples // 2, noise, seed, n_evaluation // 2)
        intents = projects.create_project(ctx, ProjectSpec.build(
            name=TEXT_DEMO_NAME, classes=names, input_kind="text", input_shape=[256],
            model={"kind": "lr", "seed": seed}, bootstrap_size=bootstrap_size // 2),
            demo=True)
        _ingest(ctx, intents["id"], utterances.evaluation)
        _ingest(ctx, intents["id"], utterances.stream)
    return project


def _ingest(ctx, pid: int, items: list[dict]) -> None:
    for start in range(0, len(items), ctx.settings.max_batch):
        examples.ingest(ctx, pid, items[start:start + ctx.settings.max_batch], actor="demo")


def answer_from_truth(ctx, pid: int, truth: dict[str, int], max_answers: int | None = None,
                      name: str = "oracle") -> int:
    """Lease and answer the project's queries with the true labels (by external id) until
    none is open or ``max_answers`` were given; returns how many. With jobs run inline,
    each answer's retrains and screenings happen before the next lease."""
    from . import access, queries
    principal = access.authenticate(ctx, access.create_token(ctx, pid, "annotator",
                                                             name)["token"])
    given = 0
    while max_answers is None or given < max_answers:
        q = queries.lease_next_query(ctx, pid, principal)
        if q is None:
            break
        ce = q["counterexample"]
        queries.answer_query(ctx, pid, q["id"], truth[q["example"]["external_id"]],
                             None if ce is None else truth[ce["external_id"]], principal)
        given += 1
    return given


def same_data_baseline(ctx, pid: int) -> dict:
    """What the answers bought, data held equal: the newest version's training set fitted
    from scratch twice, with the labels as ingested and with the current (cleaned) labels,
    each scored on the evaluation set (``{"ingested_labels": ..., "cleaned_labels": ...,
    "train_size": n}``; the model spec's training options)."""
    import numpy as np

    from . import evaluation
    from .context import latest_version, project_row
    from .model_cache import new_classifier
    from .store import Example
    with ctx.store.session() as s:
        project = project_row(s, pid)
        version = latest_version(s, pid)
        ids = np.frombuffer(version.train_ids, dtype=np.int64).tolist()
        rows = s.execute(select(Example.x, Example.original_label, Example.label)
                         .where(Example.id.in_(ids)).order_by(Example.id)).all()
        gold = s.execute(select(Example.x, Example.label).where(
            Example.project_id == pid, Example.status == evaluation.EVALUATION_STATUS)
            .order_by(Example.id)).all()
        shape, n_classes = tuple(project.input_shape), len(project.classes)
        options = {k: v for k, v in project.model.items()
                   if k in ("max_epochs", "warm_epochs", "schedule")}
        classifiers = [new_classifier(project, **options) for _ in range(2)]
    X = np.stack([np.frombuffer(r[0], np.float32).reshape(shape) for r in rows])
    X_gold = np.stack([np.frombuffer(r[0], np.float32).reshape(shape) for r in gold])
    y_gold = np.array([r[1] for r in gold], dtype=np.int64)
    out = {"train_size": len(rows)}
    for (key, column), clf in zip((("ingested_labels", 1), ("cleaned_labels", 2)),
                                  classifiers):
        clf.fit(X, np.array([r[column] for r in rows], dtype=np.int64), mode="scratch")
        out[key] = evaluation.score_evaluation(clf.predict_proba, X_gold, y_gold, n_classes)
    return out


def main(argv=None) -> int:
    """Run the demo's loop headless and print each project's cleaning curve."""
    import argparse
    import json
    import tempfile

    from . import Settings, build_context, overview, reports, runner, training
    from .context import TRAINING
    from .store import Example
    parser = argparse.ArgumentParser(prog="python -m cincer_service.service.demo",
                                     description=main.__doc__)
    parser.add_argument("--answers", type=int, default=None,
                        help="answers per project at most (default: until no query is open)")
    parser.add_argument("--png", default=None, help="write the digits project's curve here")
    parser.add_argument("--json", action="store_true", help="print the curves as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = build_context(Settings(data_dir=tmp))
        ctx.set_dispatcher(runner.inline_dispatcher(ctx))
        digits = seed_demo(ctx)
        truths = {DEMO_NAME: digits_data().truth, TEXT_DEMO_NAME: intents_data()[0].truth}
        curves = {}
        for p in projects.list_projects(ctx):
            given = answer_from_truth(ctx, p["id"], truths[p["name"]], args.answers)
            training.request_retrain(ctx, p["id"])   # a last version on every answer
            stats = reports.stats(ctx, p["id"])
            with ctx.store.session() as s:
                labels = dict(s.execute(select(Example.external_id, Example.label).where(
                    Example.project_id == p["id"], Example.status.in_(TRAINING))).all())
            wrong = sum(int(label != truths[p["name"]][ext]) for ext, label in labels.items())
            curves[p["name"]] = {"answers": given, "cleaned": stats["cleaned"],
                                 "wrong_labels_in_training": wrong,
                                 "curve": stats["cleaning_curve"],
                                 "same_data": same_data_baseline(ctx, p["id"])}
        if args.png:
            with open(args.png, "wb") as handle:
                handle.write(overview.curve_plot(ctx, digits["id"]))
    if args.json:
        print(json.dumps(curves, default=str))
        return 0
    for name, entry in curves.items():
        same = entry["same_data"]
        print(f"{name}: {entry['answers']} answers, {entry['cleaned']} labels cleaned, "
              f"{entry['wrong_labels_in_training']} wrong labels left in training")
        for key in ("ingested_labels", "cleaned_labels"):
            print(f"  the last training set ({same['train_size']}) with {key.replace('_', ' ')}"
                  f": accuracy {same[key]['accuracy']:.3f}, macro-F1 "
                  f"{same[key]['f1_macro']:.3f}")
        print("  version  answers  train   n  accuracy  macro-F1  log loss    ECE")
        for p in entry["curve"]:
            if p["status"] != "ok":
                print(f"  {p['version']:7d}  {p['answers']!s:>7}  {p['train_size']:5d}  "
                      f"{p['status']}")
                continue
            print(f"  {p['version']:7d}  {p['answers']:7d}  {p['train_size']:5d}  "
                  f"{p['n']:3d}  {p['accuracy']:8.3f}  {p['f1_macro']:8.3f}  "
                  f"{p['log_loss']:8.3f}  {p['ece']:5.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

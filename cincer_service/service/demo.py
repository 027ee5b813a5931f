"""The demo projects ``make run`` seeds on first start: scikit-learn's bundled digits as an
image project (8×8) and a text project of generated assistant utterances, both with 20%
random label noise, streamed after a bootstrap set."""
from __future__ import annotations

from sqlalchemy import select

from ..datasets import inject_noise, load_dataset, synthetic_intents
from ..spec import ModelSpec, ProjectSpec
from . import examples, projects
from .store import Project

DEMO_NAME = "demo-digits"
TEXT_DEMO_NAME = "demo-intents"


def seed_demo(ctx, n_examples: int = 600, bootstrap_size: int = 150,
              noise: float = 0.2, seed: int = 0, text: bool = True) -> dict | None:
    """Create and fill the demo projects once; the digits project, or ``None`` when the
    demo already exists. ``text`` also seeds the utterances project."""
    with ctx.store.session() as s:
        if s.scalar(select(Project.id).where(Project.demo.is_(True))) is not None:
            return None
    data = load_dataset("digits", seed=seed)
    images = data.X_train[:n_examples].reshape(-1, 8, 8)
    noisy, _ = inject_noise(data.y_train[:n_examples], data.n_classes, noise, "random",
                            seed=seed)
    spec = ProjectSpec(name=DEMO_NAME, classes=tuple(str(c) for c in range(data.n_classes)),
                       input_shape=(8, 8), input_kind="image", model=ModelSpec(seed=seed),
                       bootstrap_size=bootstrap_size)
    project = projects.create_project(ctx, spec, demo=True)
    _ingest(ctx, project["id"], [{"external_id": str(i), "x": images[i].tolist(),
                                  "label": int(noisy[i]), "source": "demo"}
                                 for i in range(len(images))])
    if text:
        texts, truth, names = synthetic_intents(n_examples // 2, seed=seed)
        noisy, _ = inject_noise(truth, len(names), noise, "random", seed=seed)
        intents = projects.create_project(ctx, ProjectSpec.build(
            name=TEXT_DEMO_NAME, classes=names, input_kind="text", input_shape=[256],
            model={"kind": "lr", "seed": seed}, bootstrap_size=bootstrap_size // 2),
            demo=True)
        _ingest(ctx, intents["id"], [{"external_id": str(i), "text": t,
                                      "label": names[noisy[i]], "source": "demo"}
                                     for i, t in enumerate(texts)])
    return project


def _ingest(ctx, pid: int, items: list[dict]) -> None:
    for start in range(0, len(items), ctx.settings.max_batch):
        examples.ingest(ctx, pid, items[start:start + ctx.settings.max_batch], actor="demo")

"""The demo project ``make run`` seeds on first start: scikit-learn's bundled digits with
20% random label noise, streamed after a bootstrap set."""
from __future__ import annotations

from sqlalchemy import select

from ..datasets import inject_noise, load_dataset
from ..spec import ModelSpec, ProjectSpec
from . import examples, projects
from .store import Project

DEMO_NAME = "demo-digits"


def seed_demo(ctx, n_examples: int = 600, bootstrap_size: int = 150,
              noise: float = 0.2, seed: int = 0) -> dict | None:
    """Create and fill the demo project once; ``None`` when it already exists."""
    with ctx.store.session() as s:
        if s.scalar(select(Project.id).where(Project.demo.is_(True))) is not None:
            return None
    data = load_dataset("digits", seed=seed)
    X = data.X_train[:n_examples].reshape(-1, 64)
    truth = data.y_train[:n_examples]
    noisy, _ = inject_noise(truth, data.n_classes, noise, "random", seed=seed)
    spec = ProjectSpec(name=DEMO_NAME, classes=tuple(str(c) for c in range(data.n_classes)),
                       input_shape=(64,), model=ModelSpec(seed=seed),
                       bootstrap_size=bootstrap_size)
    project = projects.create_project(ctx, spec, demo=True)
    items = [{"external_id": str(i), "x": X[i].tolist(), "label": int(noisy[i]),
              "source": "demo"} for i in range(len(X))]
    for start in range(0, len(items), ctx.settings.max_batch):
        examples.ingest(ctx, project["id"], items[start:start + ctx.settings.max_batch],
                        actor="demo")
    return project

"""A service-level simulation: the real labeling service, in process, on a bundled data set.

Unlike ``simulate`` (CINCER's loop on in-memory arrays), this drives the service's own use
cases: a project on a temporary SQLite database (``build_context``) whose jobs run inline
(``runner.inline_dispatcher``); a noisy bootstrap set, then the noisy stream ingested in batches;
after each batch a simulated annotator leases queries (``queries.lease_next_query``) and
answers them with the true labels (``queries.answer_query``), up to ``answers_per_batch``;
retrains happen as the project's policy says. When the stream is over the annotator keeps
answering until ``answers`` answers were given or the queue is empty.

Each (seed, queue order, budget) variant replays the same data, noise and stream order.
Reported per run: labels cleaned (a planted error whose label is now the true one)
after every answer and at ``ks`` answers; the staleness of what the annotator was shown
(``staleness``: shares of leased pairs built under an outdated model version, showing an
example already answered, or repeating a counter-example); and per model version its train size, its
weighted F1 on the data set's clean test split (the simulation knows the truth; the
service does not) and the service's own held-out metrics (``service.evaluation``).
Nothing here is tuned on the test split: it is only reported.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..datasets import DATASETS, NOISE_TYPES, inject_noise, load_dataset
from ..spec import (
    DEFAULT_MAX_EPOCHS,
    DEFAULT_THRESHOLD,
    LIMITS,
    MODEL_KINDS,
    QUEUE_ORDERS,
    RETRAIN_MODES,
    ProjectSpec,
)


@dataclass
class ServiceSimConfig:
    dataset: str = "digits"
    model: str = "fc"
    noise: float = 0.2
    noise_type: str = "random"
    bootstrap: int = 100
    stream: int = 300                 # incoming examples after the bootstrap set
    batch: int = 50                   # examples per ingest call
    answers_per_batch: int = 5        # the annotator's answers after each batch
    answers: int = 50                 # answers in all (the largest k)
    ks: list[int] = field(default_factory=lambda: [10, 25, 50])
    orders: list[str] = field(default_factory=lambda: ["fifo", "priority"])
    budgets: list[float | None] = field(default_factory=lambda: [None])
    threshold: float = DEFAULT_THRESHOLD
    retrain_every: int = 10
    retrain_mode: str = "scratch"
    max_epochs: int = DEFAULT_MAX_EPOCHS
    holdout_share: float = 0.0
    seeds: list[int] = field(default_factory=lambda: [0])

    def validate(self) -> None:
        """``ValueError`` with a readable message for any bad setting."""
        low, high = LIMITS["query_budget"]
        checks = [
            (self.dataset in DATASETS, f"unknown dataset {self.dataset!r}"),
            (self.model in MODEL_KINDS, f"unknown model {self.model!r}"),
            (self.model != "cnn" or self.dataset == "digits", "cnn needs --dataset digits"),
            (self.noise_type in NOISE_TYPES, f"unknown noise type {self.noise_type!r}"),
            (0.0 <= self.noise < 1.0, "--noise must lie in [0, 1)"),
            (self.bootstrap >= 2 and self.stream >= 0, "--bootstrap >= 2, --stream >= 0"),
            (self.batch >= 1 and self.answers_per_batch >= 0 and self.answers >= 0,
             "--batch >= 1, --answers-per-batch >= 0, --answers >= 0"),
            (bool(self.ks) and all(k >= 1 for k in self.ks), "--ks: positive integers"),
            (bool(self.orders) and all(o in QUEUE_ORDERS for o in self.orders),
             f"--orders: some of {', '.join(QUEUE_ORDERS)}"),
            (bool(self.budgets) and all(b is None or low <= b <= high for b in self.budgets),
             f"--budgets: none or numbers in [{low}, {high}]"),
            (0.0 <= self.threshold <= 1.0, "--threshold must lie in [0, 1]"),
            (self.retrain_every >= 1, "--retrain-every must be >= 1"),
            (self.retrain_mode in RETRAIN_MODES, "--retrain must be scratch or warm"),
            (self.max_epochs >= 1, "--max-epochs must be >= 1"),
            (0.0 <= self.holdout_share <= LIMITS["holdout_share"][1],
             f"--holdout-share must lie in [0, {LIMITS['holdout_share'][1]}]"),
            (bool(self.seeds), "--seeds is empty"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


class Stream:
    """Data, planted noise and stream order of one seed (shared by every variant)."""

    def __init__(self, config: ServiceSimConfig, seed: int):
        self.data = load_dataset(config.dataset, seed=0)
        self.noisy, self.corrupted = inject_noise(self.data.y_train, self.data.n_classes,
                                                  config.noise, config.noise_type, seed)
        order = np.random.default_rng(seed).permutation(len(self.data.y_train))
        need = config.bootstrap + config.stream
        if need > len(order):
            raise ValueError(f"{config.dataset} has {len(order)} training examples; "
                             f"--bootstrap + --stream needs {need}")
        self.bootstrap = order[:config.bootstrap]
        self.incoming = order[config.bootstrap:need]

    def items(self, indices) -> list[dict]:
        return [{"external_id": str(int(i)), "x": self.data.X_train[i].tolist(),
                 "label": int(self.noisy[i])} for i in indices]


def _project_spec(config: ServiceSimConfig, data, seed: int, order: str,
                  budget: float | None) -> ProjectSpec:
    return ProjectSpec.build(
        name=f"service-sim {config.dataset} seed {seed} {order} budget {budget}",
        classes=[str(c) for c in range(data.n_classes)], input_shape=data.input_shape,
        model={"kind": config.model, "seed": seed, "max_epochs": config.max_epochs},
        threshold=config.threshold, bootstrap_size=config.bootstrap,
        retrain={"mode": config.retrain_mode, "every_n_answers": config.retrain_every},
        query_budget=budget, queue_order=order, holdout_share=config.holdout_share)


def _cleaned(ctx, pid: int, truth) -> int:
    """Planted errors whose label is now the true one."""
    from sqlalchemy import select

    from ..service.store import Example
    with ctx.store.session() as s:
        rows = s.execute(select(Example.external_id, Example.label, Example.original_label)
                         .where(Example.project_id == pid)).all()
    return sum(1 for ext, label, original in rows
               if original != truth[int(ext)] and label == truth[int(ext)])


def _versions(ctx, pid: int, data) -> list[dict]:
    """Every model version: train size, clean test F1, the service's held-out metrics."""
    from sklearn.metrics import f1_score
    from sqlalchemy import select

    from ..service.model_cache import new_classifier, weights_from_bytes
    from ..service.store import ModelVersion, Project
    out = []
    with ctx.store.session() as s:
        project = s.get(Project, pid)
        for v in s.scalars(select(ModelVersion).where(ModelVersion.project_id == pid)
                           .order_by(ModelVersion.version)):
            clf = new_classifier(project)
            clf.set_weights(weights_from_bytes(v.weights))
            test_f1 = float(f1_score(data.y_test, clf.predict(data.X_test), average="weighted"))
            heldout = v.metrics.get("heldout", {})

            def f1_of(name, heldout=heldout):
                entry = heldout.get(name, {})
                return entry.get("f1_weighted") if entry.get("status") == "ok" else None
            out.append({"version": v.version, "train_size": v.train_size,
                        "test_f1": test_f1, "trusted_f1": f1_of("trusted"),
                        "holdout_noisy_f1": f1_of("holdout_noisy"), "heldout": heldout})
    return out


class Staleness:
    """What the annotator saw, pair by pair: pairs built under an outdated model version,
    pairs showing an example a person had already labelled (either side, by an earlier
    answer), and pairs whose counter-example an earlier pair had shown already."""

    def __init__(self):
        self.leased = self.outdated = self.labelled = self.repeated = 0
        self.answered_ids: set[int] = set()
        self.counterexamples: set[int] = set()

    def see(self, q: dict, newest: int) -> None:
        ex, ce = q["example"], q["counterexample"]
        sides = {ex["id"]} | ({ce["id"]} if ce else set())
        self.leased += 1
        self.outdated += int(q["model_version"] < newest)
        self.labelled += int(bool(sides & self.answered_ids))
        self.repeated += int(ce is not None and ce["id"] in self.counterexamples)
        self.answered_ids |= sides
        if ce is not None:
            self.counterexamples.add(ce["id"])

    def shares(self) -> dict:
        n = max(self.leased, 1)
        return {"leased": self.leased, "outdated_version": self.outdated / n,
                "already_labelled": self.labelled / n,
                "repeated_counterexample": self.repeated / n}


def _newest_version(ctx, pid) -> int:
    from ..service.context import latest_version_number
    with ctx.store.session() as s:
        return latest_version_number(s, pid) or 0


def run_variant(config: ServiceSimConfig, stream: Stream, seed: int, order: str,
                budget: float | None) -> dict:
    """One replay through the service; the run's JSON record."""
    from ..service import (
        Settings,
        access,
        build_context,
        examples,
        projects,
        queries,
        reports,
        runner,
    )
    data, truth = stream.data, stream.data.y_train
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cincer-service-sim-") as tmp:
        ctx = build_context(Settings(data_dir=tmp))
        ctx.set_dispatcher(runner.inline_dispatcher(ctx))
        pid = projects.create_project(ctx, _project_spec(config, data, seed, order,
                                                         budget))["id"]
        annotator = access.authenticate(
            ctx, access.create_token(ctx, pid, "annotator", "simulated")["token"])
        trace, cleaned_by = [], {"example": 0, "counterexample": 0}
        staleness = Staleness()

        def answer_one() -> bool:
            q = queries.lease_next_query(ctx, pid, annotator)
            if q is None:
                return False
            staleness.see(q, _newest_version(ctx, pid))
            ex, ce = q["example"], q["counterexample"]
            ex_truth = int(truth[int(ex["external_id"])])
            ce_truth = None if ce is None else int(truth[int(ce["external_id"])])
            cleaned_by["example"] += int(ex["label"] != ex_truth
                                         and stream.corrupted[int(ex["external_id"])])
            if ce is not None:
                cleaned_by["counterexample"] += int(
                    ce["label"] != ce_truth and stream.corrupted[int(ce["external_id"])])
            queries.answer_query(ctx, pid, q["id"], ex_truth, ce_truth, annotator)
            trace.append(_cleaned(ctx, pid, truth))
            return True

        examples.ingest(ctx, pid, stream.items(stream.bootstrap))
        for start in range(0, len(stream.incoming), config.batch):
            examples.ingest(ctx, pid, stream.items(stream.incoming[start:start + config.batch]))
            for _ in range(config.answers_per_batch):
                if len(trace) >= config.answers or not answer_one():
                    break
        while len(trace) < config.answers and answer_one():
            pass
        stats = reports.stats(ctx, pid)
        versions = _versions(ctx, pid, data)
        query_origins, answered_origins = {}, {}
        for q in queries.list_queries(ctx, pid, limit=ctx.settings.max_page)["items"]:
            query_origins[q["origin"]] = query_origins.get(q["origin"], 0) + 1
            if q["status"] == "answered":
                answered_origins[q["origin"]] = answered_origins.get(q["origin"], 0) + 1
    return {"seed": seed, "order": order, "budget": budget, "answers": len(trace),
            "cleaned_trace": trace,
            "cleaned_at": {str(k): (trace[k - 1] if len(trace) >= k else None)
                           for k in config.ks},
            "cleaned_by_answers": cleaned_by, "planted_errors": int(
                stream.corrupted[np.r_[stream.bootstrap, stream.incoming]].sum()),
            "queries": stats["queries"], "queries_by_origin": query_origins,
            "answered_by_origin": answered_origins,
            "threshold": stats["threshold"], "versions": versions,
            "staleness": staleness.shares(),
            "seconds": round(time.perf_counter() - started, 2)}


def _mean_se(values) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "se": None, "n": 0}
    a = np.asarray(values, dtype=np.float64)
    se = float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else None
    return {"mean": float(a.mean()), "se": se, "n": len(a)}


def variant_name(order: str, budget: float | None) -> str:
    return f"{order}/{'fixed' if budget is None else f'budget{budget:g}'}"


def summarize(config: ServiceSimConfig, runs: list[dict]) -> dict:
    """Per variant: cleaned labels at each k and the last version's test F1 (mean ± se over
    seeds); with both orders, the paired difference priority − fifo at each k."""
    summary = {}
    for budget in config.budgets:
        for order in config.orders:
            mine = [r for r in runs if r["order"] == order and r["budget"] == budget]
            summary[variant_name(order, budget)] = {
                "cleaned_at": {str(k): _mean_se([r["cleaned_at"][str(k)] for r in mine])
                               for k in config.ks},
                "final_test_f1": _mean_se([r["versions"][-1]["test_f1"] for r in mine
                                           if r["versions"]]),
                "queries_created": _mean_se([sum(r["queries"].values()) for r in mine]),
                "staleness": {key: _mean_se([r["staleness"][key] for r in mine])
                              for key in ("outdated_version", "already_labelled",
                                          "repeated_counterexample")}}
        if {"fifo", "priority"} <= set(config.orders):
            by_seed = {(r["seed"], r["order"]): r for r in runs if r["budget"] == budget}
            diffs = {}
            for k in config.ks:
                pairs = [(by_seed[(s, "priority")]["cleaned_at"][str(k)],
                          by_seed[(s, "fifo")]["cleaned_at"][str(k)]) for s in config.seeds]
                diffs[str(k)] = _mean_se([p - f for p, f in pairs
                                          if p is not None and f is not None])
            summary[f"priority-fifo/{'fixed' if budget is None else f'budget{budget:g}'}"] = {
                "cleaned_at_difference": diffs}
    return summary


def service_sim(config: ServiceSimConfig, log=None) -> dict:
    """Every (seed, budget, order) variant; the JSON document of ``service-sim``."""
    config.validate()
    runs = []
    for seed in config.seeds:
        stream = Stream(config, seed)
        for budget in config.budgets:
            for order in config.orders:
                run = run_variant(config, stream, seed, order, budget)
                runs.append(run)
                if log is not None:
                    print(f"seed {seed} {variant_name(order, budget)}: cleaned at "
                          f"{run['cleaned_at']} in {run['seconds']} s", file=log, flush=True)
    return {"config": asdict(config), "runs": runs, "summary": summarize(config, runs)}


def plot_service_sim(document: dict, out_dir: str) -> str:
    """``service_sim.png``: cleaned labels against answers (mean ± se over seeds) and the
    clean test F1 of each model version, per variant."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    config, runs = document["config"], document["runs"]
    figure = Figure(figsize=(10, 4), dpi=100)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for budget in config["budgets"]:
        for order in config["orders"]:
            mine = [r for r in runs if r["order"] == order and r["budget"] == budget]
            name = variant_name(order, budget)
            length = min((len(r["cleaned_trace"]) for r in mine), default=0)
            if length:
                traces = np.array([r["cleaned_trace"][:length] for r in mine], dtype=float)
                mean = traces.mean(axis=0)
                se = traces.std(axis=0, ddof=1) / np.sqrt(len(mine)) if len(mine) > 1 else 0
                x = np.arange(1, length + 1)
                left.plot(x, mean, label=name)
                left.fill_between(x, mean - se, mean + se, alpha=0.2)
            n_versions = min((len(r["versions"]) for r in mine), default=0)
            if n_versions:
                f1 = np.array([[v["test_f1"] for v in r["versions"][:n_versions]]
                               for r in mine])
                right.plot(np.arange(1, n_versions + 1), f1.mean(axis=0), marker="o",
                           label=name)
    for k in config["ks"]:
        left.axvline(k, color="#999999", lw=0.6, ls=":")
    left.set(xlabel="answers", ylabel="labels cleaned", title="cleaned labels per answer")
    right.set(xlabel="model version", ylabel="weighted F1 (clean test split)",
              title="F1 per model version")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    figure.tight_layout()
    path = os.path.join(out_dir, "service_sim.png")
    figure.savefig(path)
    return path


if __name__ == "__main__":  # pragma: no cover
    import json
    json.dump(service_sim(ServiceSimConfig(), log=sys.stderr), sys.stdout)

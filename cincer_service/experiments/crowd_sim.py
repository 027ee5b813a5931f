"""``service-sim --crowd``: a simulated crowd against the real service layer.

The crowd: annotators whose accuracies are spread evenly from 0.95 to 0.60, plus spammers
who answer uniformly at random. A wrong answer is the class the model predicts for that
side half the time (a confusion toward the model), another wrong class uniformly otherwise.
Each answer comes from a crowd member drawn at random (suspended ones never; none here).

Policies, on the same seeds, data, noise and stream order:

* ``single``: today's service (``answers_per_query = 1``): the drawn member's answer is the
  label;
* ``majority3``: three distinct members answer each leased pair; the simulation takes the
  majority (ties: the first answer) and submits it as the one answer;
* ``consensus``: dynamic overlap in the service (``answers_per_query = 2``,
  ``max_answers_per_query = 3``, the default ``consensus_confidence``): each drawn member
  leases and answers, and the service's consensus decides.

Reported per run: the label accuracy, against the truth, of every example that was a side
of a decided query; the last model version's weighted F1 on the clean test split; answers
spent (given, counted or not); and for each spammer, how many answers they gave before the
service flagged them (None: never). Nothing is tuned on these seeds.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .service_sim import ServiceSimConfig, Stream, _mean_se, _project_spec, _versions

POLICIES = ("single", "majority3", "consensus")
CONSENSUS_POLICY = {"answers_per_query": 2, "max_answers_per_query": 3}


@dataclass
class CrowdSimConfig:
    base: ServiceSimConfig = field(default_factory=lambda: ServiceSimConfig(
        dataset="digits", stream=700, answers=300, answers_per_batch=30,
        orders=["priority"], seeds=[0, 1, 2, 3, 4]))
    annotators: int = 10
    best: float = 0.95
    worst: float = 0.60
    spammers: int = 2
    toward_model: float = 0.5
    policies: list[str] = field(default_factory=lambda: list(POLICIES))

    def validate(self) -> None:
        self.base.validate()
        if not set(self.policies) <= set(POLICIES) or not self.policies:
            raise ValueError(f"--policies: some of {', '.join(POLICIES)}")
        if self.annotators + self.spammers < 3:
            raise ValueError("a crowd needs at least 3 members")


class Member:
    def __init__(self, name: str, accuracy: float | None, principal):
        self.name, self.accuracy, self.principal = name, accuracy, principal
        self.answers = 0
        self.flagged_after: int | None = None

    @property
    def spammer(self) -> bool:
        return self.accuracy is None

    def answer(self, truth: int, predicted: int | None, c: int, toward: float, rng) -> int:
        if self.spammer:
            return int(rng.integers(c))
        if rng.random() < self.accuracy:
            return truth
        if predicted is not None and predicted != truth and rng.random() < toward:
            return int(predicted)
        return int(rng.choice([k for k in range(c) if k != truth]))


def _side_answer(member, side, truth, c, config, rng):
    if side is None:
        return None
    return member.answer(int(truth[int(side["external_id"])]), side.get("prediction"), c,
                         config.toward_model, rng)


def run_policy(config: CrowdSimConfig, stream: Stream, seed: int, policy: str) -> dict:
    """One replay of ``policy``; the run's JSON record."""
    from sqlalchemy import select

    from ..service import (
        Conflict,
        Settings,
        access,
        build_context,
        examples,
        projects,
        queries,
        runner,
    )
    from ..service.annotators import is_flagged
    from ..service.projects import crowd_policy
    from ..service.store import Annotator, Example, Project, Query
    base, data, truth = config.base, stream.data, stream.data.y_train
    c = data.n_classes
    rng = np.random.default_rng(10_000 + seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cincer-crowd-sim-") as tmp:
        ctx = build_context(Settings(data_dir=tmp))
        ctx.set_dispatcher(runner.inline_dispatcher(ctx))
        spec = _project_spec(base, data, seed, base.orders[0], None)
        pid = projects.create_project(ctx, spec)["id"]
        if policy == "consensus":
            projects.update_project(ctx, pid, {"crowd": CONSENSUS_POLICY}, "simulation")
        accuracies = list(np.linspace(config.best, config.worst, config.annotators)) \
            if config.annotators > 1 else [config.best]
        crowd = []
        for i, accuracy in enumerate(accuracies + [None] * config.spammers):
            name = f"spammer{i - config.annotators}" if accuracy is None else f"annotator{i}"
            principal = access.authenticate(
                ctx, access.create_token(ctx, pid, "annotator", name)["token"])
            crowd.append(Member(name, None if accuracy is None else float(accuracy),
                                principal))
        voter = access.authenticate(ctx, access.create_token(ctx, pid, "annotator",
                                                             "majority")["token"])
        spent = {"answers": 0, "refused": 0}

        def check_flag(member):
            if member.flagged_after is not None:
                return
            with ctx.store.session() as s:
                row = s.scalar(select(Annotator).where(Annotator.project_id == pid,
                                                       Annotator.name == member.name))
                minimum = crowd_policy(s.get(Project, pid))["min_annotator_accuracy"]
                if row is not None and is_flagged(row, minimum):
                    member.flagged_after = member.answers

        def give(member, q) -> None:
            labels = (_side_answer(member, q["example"], truth, c, config, rng),
                      _side_answer(member, q["counterexample"], truth, c, config, rng))
            member.answers += 1
            spent["answers"] += 1
            try:
                queries.answer_query(ctx, pid, q["id"], *labels, member.principal)
            except Conflict:
                spent["refused"] += 1
            check_flag(member)

        def answer_one() -> bool:
            if policy == "majority3":
                q = queries.lease_next_query(ctx, pid, voter)
                if q is None:
                    return False
                trio = [crowd[i] for i in rng.choice(len(crowd), 3, replace=False)]
                votes = [(_side_answer(m, q["example"], truth, c, config, rng),
                          _side_answer(m, q["counterexample"], truth, c, config, rng))
                         for m in trio]
                for m in trio:
                    m.answers += 1
                spent["answers"] += 3
                decided = tuple(_majority([v[k] for v in votes]) for k in (0, 1))
                queries.answer_query(ctx, pid, q["id"], *decided, voter)
                return True
            member = crowd[int(rng.integers(len(crowd)))]
            q = queries.lease_next_query(ctx, pid, member.principal)
            if q is None:
                return False
            give(member, q)
            return True

        examples.ingest(ctx, pid, stream.items(stream.bootstrap))
        for start in range(0, len(stream.incoming), base.batch):
            examples.ingest(ctx, pid, stream.items(stream.incoming[start:start + base.batch]))
            for _ in range(base.answers_per_batch):
                if spent["answers"] >= base.answers or not answer_one():
                    break
        idle = 0
        while spent["answers"] < base.answers and idle < 3 * len(crowd):
            idle = 0 if answer_one() else idle + 1
        with ctx.store.session() as s:
            decided = s.scalars(select(Query).where(Query.project_id == pid,
                                                    Query.status == "answered")).all()
            sides = {i for q in decided for i in (q.example_id, q.counterexample_id)
                     if i is not None}
            rows = s.execute(select(Example.external_id, Example.label)
                             .where(Example.id.in_(sides))).all()
        right = sum(int(label == truth[int(ext)]) for ext, label in rows)
        versions = _versions(ctx, pid, data)
    return {"seed": seed, "policy": policy, "answers_spent": spent["answers"],
            "answers_refused": spent["refused"], "queries_decided": len(decided),
            "answered_examples": len(rows),
            "label_accuracy": right / len(rows) if rows else None,
            "test_f1": versions[-1]["test_f1"] if versions else None,
            "spammers_flagged_after": {m.name: m.flagged_after for m in crowd if m.spammer},
            "spammer_answers": {m.name: m.answers for m in crowd if m.spammer},
            "flagged": {m.name: m.flagged_after for m in crowd
                        if not m.spammer and m.flagged_after is not None},
            "seconds": round(time.perf_counter() - started, 1)}


def _majority(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    counts = {v: values.count(v) for v in values}
    best = max(counts.values())
    return next(v for v in values if counts[v] == best)


def crowd_sim(config: CrowdSimConfig, log=None) -> dict:
    """Every (seed, policy); the JSON document of ``service-sim --crowd``."""
    config.validate()
    runs = []
    for seed in config.base.seeds:
        stream = Stream(config.base, seed)
        for policy in config.policies:
            run = run_policy(config, stream, seed, policy)
            runs.append(run)
            if log is not None:
                print(f"seed {seed} {policy}: accuracy {run['label_accuracy']}, answers "
                      f"{run['answers_spent']}, F1 {run['test_f1']}, spammers flagged after "
                      f"{run['spammers_flagged_after']} ({run['seconds']} s)", file=log,
                      flush=True)
    summary = {}
    for policy in config.policies:
        mine = [r for r in runs if r["policy"] == policy]
        # majority3's members never answer the service (the simulation aggregates): no flags
        flags = [] if policy == "majority3" else \
            [v for r in mine for v in r["spammers_flagged_after"].values()]
        summary[policy] = {
            "label_accuracy": _mean_se([r["label_accuracy"] for r in mine]),
            "test_f1": _mean_se([r["test_f1"] for r in mine]),
            "answers_spent": _mean_se([r["answers_spent"] for r in mine]),
            "queries_decided": _mean_se([r["queries_decided"] for r in mine]),
            "answered_examples": _mean_se([r["answered_examples"] for r in mine]),
            "spammer_flagged_after": flags,
            "spammers_never_flagged": sum(v is None for v in flags)}
    return {"config": asdict(config), "runs": runs, "summary": summary}

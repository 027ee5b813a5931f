"""The crowd's consensus (``cincer-service bench``): update latency and CROWDLAB.

* ``consensus_update_ms``: one answer's consensus update with 12 annotators and 1,000
  answered queries (10 classes). ``core``: the arithmetic alone, as the service does it per
  answer (the counts of the query's voters and the project's, the model's binned voters
  included, from their stored lists, both sides' posteriors and count moves, every voter's
  leave-one-out agreement, the counts back to lists). ``service``:
  ``annotators.update_consensus`` on SQLite inside the answer's transaction (reads and
  locks the voters' rows, writes them and the project's state, flushed), with the 1,000
  answered queries and their answers in the database.
* ``crowdlab``: offline, on the same answer tables, the accuracy of our consensus (batch
  Dawid–Skene with the model as a voter, and the online update in answer order) and of
  cleanlab's CROWDLAB (``get_label_quality_multiannotator``; the ``bench`` extra, AGPL, only
  here). The online update sees no query sides here (one set of binned model voters).
  The table: digits, the ``service-sim --crowd`` crowd (10 annotators 0.95..0.60 with
  half their errors toward the model's class, 2 spammers), 3 answers per example; the
  model's probabilities are out-of-fold (5-fold logistic regression on 20% noisy labels),
  as CROWDLAB asks.
"""
from __future__ import annotations

import tempfile
import time

import numpy as np

from ..consensus import MODEL, Crowd, dawid_skene, majority

SIDES = ("example", "counterexample")


def _percentiles(samples, cpu=None) -> dict:
    """Milliseconds: p50, p99 and max of the wall-clock ``samples``; with ``cpu`` (this
    thread's CPU seconds per sample) its p99 too, which a busy machine does not inflate."""
    a = np.asarray(samples) * 1000.0
    out = {"p50": round(float(np.percentile(a, 50)), 3),
           "p99": round(float(np.percentile(a, 99)), 3),
           "max": round(float(a.max()), 3), "n": len(a)}
    if cpu is not None:
        out["cpu_p99"] = round(float(np.percentile(np.asarray(cpu) * 1000.0, 99)), 3)
    load = _load()
    if load is not None:
        out["load_average_1min"] = load
    return out


def _load():
    try:
        import os
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _votes(rng, m, c, per_item=3):
    return [(int(j), int(rng.integers(c))) for j in rng.choice(m, per_item, replace=False)]


def bench_core(annotators: int = 12, answered: int = 1000, c: int = 10, updates: int = 2000,
               seed: int = 0) -> dict:
    """The arithmetic of one answer's update, from and back to the stored lists: each
    update is a third answer to one of ``answered`` queries that have two."""
    rng = np.random.default_rng(seed)
    crowd = Crowd(c)
    items = []                  # per query: (votes, probabilities, posterior) per side
    for _ in range(answered):
        sides, voters = [], rng.choice(annotators, 2, replace=False)
        for side in SIDES:
            votes = [(int(a), int(rng.integers(c))) for a in voters]
            probs = rng.dirichlet(np.ones(c) * rng.choice([0.1, 1.0]))
            sides.append((votes, probs, crowd.update_item(votes, probs, side=side)))
        items.append(sides)
    stored = {k: v.tolist() for k, v in crowd.counts.items()}
    state = crowd.to_json()
    times, cpu = [], []
    for n in range(updates):
        sides = items[n % answered]
        taken = {k for k, _ in sides[0][0]}
        new = int(rng.choice([a for a in range(annotators) if a not in taken]))
        t0, c0 = time.perf_counter(), time.thread_time()
        keys = taken | {new}
        live = Crowd(c, class_counts=state["class_counts"],
                     counts={**{k: stored[k] for k in keys if k in stored},
                             MODEL: state["model"], **state["models"]})
        for (votes, probs, old), side in zip(sides, SIDES):
            now = votes + [(new, int(rng.integers(c)))]
            live.update_item(now, probs, old, votes, side)
            live.leave_one_out(now, probs, side)
        _ = {k: live.counts_of(k).tolist() for k in keys}, live.to_json()
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return _percentiles(times, cpu)


def bench_service(annotators: int = 12, answered: int = 1000, c: int = 10,
                  updates: int = 300, seed: int = 0) -> dict:
    """``annotators.update_consensus`` on SQLite with ``answered`` answered queries."""
    from ..service import Settings, build_context, projects
    from ..service import annotators as crowd_annotators
    from ..service.store import Annotator, Answer, Example, Project, Query, utcnow
    from ..spec import ProjectSpec
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="cincer-bench-consensus-") as tmp:
        ctx = build_context(Settings(data_dir=tmp))
        pid = projects.create_project(ctx, ProjectSpec.build(
            name="bench", classes=[str(k) for k in range(c)], input_shape=[4]))["id"]
        total = answered + updates
        now = utcnow()
        with ctx.store.session() as s:
            people = [Annotator(project_id=pid, name=f"a{j}", created_at=now)
                      for j in range(annotators)]
            s.add_all(people)
            rows = [Example(project_id=pid, x=np.zeros(4, np.float32).tobytes(),
                            original_label=0, label=0, status="reviewed")
                    for _ in range(2 * total)]
            s.add_all(rows)
            s.flush()
            queries = []
            for i in range(total):
                queries.append(Query(
                    project_id=pid, example_id=rows[2 * i].id,
                    counterexample_id=rows[2 * i + 1].id, model_version=1,
                    strategy="top_fisher", margin=0.5, prediction=1,
                    probabilities=rng.dirichlet(np.ones(c)).tolist(),
                    counterexample_probabilities=rng.dirichlet(np.ones(c)).tolist(),
                    status="answered" if i < answered else "collecting"))
            s.add_all(queries)
            s.flush()
            qids = [q.id for q in queries]
            ids = [p.id for p in people]
        # the answered history, through the same update
        for i, qid in enumerate(qids):
            with ctx.store.session() as s:
                project, q = s.get(Project, pid), s.get(Query, qid)
                voters = rng.choice(ids, 3 if i < answered else 2, replace=False)
                answers = []
                for a in voters:
                    row = Answer(project_id=pid, query_id=qid, annotator_id=int(a),
                                 status="answered", example_label=int(rng.integers(c)),
                                 counterexample_label=int(rng.integers(c)))
                    s.add(row)
                    s.flush()
                    answers.append(row)
                    crowd_annotators.update_consensus(s, project, q, list(answers), row)
        times, cpu = [], []
        for qid in qids[answered:]:
            with ctx.store.session() as s:
                project, q = s.get(Project, pid), s.get(Query, qid)
                taken = {a.annotator_id for a in q_answers(s, qid)}
                free = [a for a in ids if a not in taken]
                row = Answer(project_id=pid, query_id=qid, annotator_id=int(free[0]),
                             status="answered", example_label=int(rng.integers(c)),
                             counterexample_label=int(rng.integers(c)))
                s.add(row)
                s.flush()
                answers = q_answers(s, qid)
                t0, c0 = time.perf_counter(), time.thread_time()
                crowd_annotators.update_consensus(s, project, q, answers, row)
                s.flush()
                times.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
        ctx.store.engine.dispose()
    return _percentiles(times, cpu)


def q_answers(s, qid):
    from sqlalchemy import select

    from ..service.store import Answer
    return s.scalars(select(Answer).where(Answer.query_id == qid).order_by(Answer.id)).all()


# -- CROWDLAB ------------------------------------------------------------------------------
def crowd_table(seed: int, per_item: int = 3):
    """Digits' training split: the crowd's answers (items × 12, -1: none), out-of-fold
    model probabilities from 20% noisy labels, and the truth."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    from ..datasets import inject_noise, load_dataset
    data = load_dataset("digits", seed=0)
    X, truth, c = data.X_train.reshape(len(data.X_train), -1), data.y_train, data.n_classes
    noisy, _ = inject_noise(truth, c, 0.2, "random", seed)
    probs = cross_val_predict(LogisticRegression(max_iter=300), X, noisy, cv=5,
                              method="predict_proba")
    rng = np.random.default_rng(seed)
    accuracies = list(np.linspace(0.95, 0.60, 10)) + [None, None]
    table = np.full((len(truth), len(accuracies)), -1)
    predicted = probs.argmax(axis=1)
    for i in range(len(truth)):
        for j in rng.choice(len(accuracies), per_item, replace=False):
            acc = accuracies[j]
            if acc is None:
                table[i, j] = rng.integers(c)
            elif rng.random() < acc:
                table[i, j] = truth[i]
            elif predicted[i] != truth[i] and rng.random() < 0.5:
                table[i, j] = predicted[i]
            else:
                table[i, j] = rng.choice([k for k in range(c) if k != truth[i]])
    return table, probs, truth, c


def crowdlab_comparison(seeds=(0, 1, 2, 3, 4)) -> dict:
    """Per seed: accuracy of majority, our batch and online consensus, and CROWDLAB."""
    try:
        import pandas as pd
        from cleanlab.multiannotator import get_label_quality_multiannotator
    except ImportError:
        return {"skipped": "cleanlab (the bench extra) is not installed"}
    rows = []
    for seed in seeds:
        table, probs, truth, c = crowd_table(seed)
        ours = dawid_skene(table, c, probabilities=probs)["labels"]
        crowd, online = Crowd(c), []
        for i in range(len(table)):
            votes = [(int(j), int(table[i, j])) for j in np.flatnonzero(table[i] >= 0)]
            online.append(int(np.argmax(crowd.update_item(votes, probs[i]))))
        frame = pd.DataFrame(np.where(table >= 0, table, np.nan))
        result = get_label_quality_multiannotator(frame, probs, verbose=False)
        theirs = result["label_quality"]["consensus_label"].to_numpy()
        rows.append({"seed": seed, "items": len(truth),
                     "majority": float((majority(table, c) == truth).mean()),
                     "model_alone": float((probs.argmax(1) == truth).mean()),
                     "consensus_batch": float((ours == truth).mean()),
                     "consensus_online": float((np.array(online) == truth).mean()),
                     "crowdlab": float((theirs == truth).mean())})
    means = {k: round(float(np.mean([r[k] for r in rows])), 4)
             for k in ("majority", "model_alone", "consensus_batch", "consensus_online",
                       "crowdlab")}
    return {"seeds": rows, "mean": means}


def consensus_benchmarks(quick: bool = False) -> dict:
    """The ``bench`` entries of this module."""
    return {"consensus_update_ms": {"core": bench_core(), "service_sqlite": bench_service(
                updates=100 if quick else 300)},
            "crowdlab": crowdlab_comparison((0,) if quick else (0, 1, 2, 3, 4))}


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys
    json.dump(consensus_benchmarks("--quick" in sys.argv), sys.stdout, indent=1)

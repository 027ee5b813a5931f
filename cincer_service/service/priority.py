"""The queue in order of value: which open query most likely cleans a label when answered.

Each query is scored when it is created (screening) and again when its counter-example is
found, from what the service already knows at that moment, and the score is stored as
``Query.priority``; annotators lease the highest priority first (ties by id), unless the
project asks for ``queue_order = "fifo"``. The score estimates the probability that the
answer changes at least one of the two labels shown:

``priority = p_example + (1 − p_example) · p_counterexample``

* ``p_example``, that the example's given label ``ỹ`` is wrong: the margin μ read as a
  probability (clipped to ``[0.01, 0.99]``), its odds multiplied by how much more (or less)
  often answers changed labels given as ``ỹ`` than labels in general:
  ``logit p_example = logit μ + logit r(ỹ) − logit r̄``. ``r(ỹ)`` is the share of answered
  examples given label ``ỹ`` whose label the answer changed, shrunk toward the overall
  share ``r̄`` by ``PRIOR_ANSWERS`` pseudo-answers (``r̄`` itself starts at 1/2:
  Laplace). With no history the class term is 0 and the margin alone orders the queue.
* ``p_counterexample``, that the counter-example's label ``ŷ`` is wrong (it matters when
  the example's label is right: the model then trusts a wrongly labelled neighbour): the
  same shrunk share for counter-examples labelled ``ŷ`` (``answer_counterexample``
  events), times how far the strategy's ranking score of the chosen counter-example stands
  out from the other candidates' scores: ``z = (best − mean) / std`` over the pertinent
  candidates, mapped to ``z⁺ / (z⁺ + STANDOUT_HALF)`` in ``[0, 1)``. A z-score is used
  because the raw scores of one query share a scale (the query's gradient) that says
  nothing about the counter-example. 0 before the counter-example is found, and when
  there is none.

Deterministic: the same rows give the same scores. A query's score is not revised when
later answers change the history; new queries see the new history. Pure numpy and
SQLAlchemy; no TensorFlow.
"""
from __future__ import annotations

import math

import numpy as np
from sqlalchemy import case, func, select

from ..spec import QUEUE_ORDERS  # noqa: F401  (re-exported: "priority" or "fifo")
from .store import Example, LabelEvent

PRIOR_ANSWERS = 4.0          # pseudo-answers pulling a class's error share toward the overall
STANDOUT_HALF = 3.0          # a counter-example standing 3 standard deviations out scores 1/2
MARGIN_CLIP = (0.01, 0.99)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _sigmoid(a: float) -> float:
    return 1.0 / (1.0 + math.exp(-a))


class History:
    """Answers so far, per class: ``{label: (changed, answered)}`` for the examples' given
    labels and for the counter-examples' labels."""

    def __init__(self, examples: dict | None = None, counterexamples: dict | None = None):
        self.examples = dict(examples or {})
        self.counterexamples = dict(counterexamples or {})

    @staticmethod
    def rate(counts: dict, label: int) -> tuple[float, float]:
        """``(r(label), r̄)``: the shrunk share of changed labels for ``label``, and the
        overall share."""
        changed = sum(c for c, _ in counts.values())
        answered = sum(n for _, n in counts.values())
        overall = (changed + 1.0) / (answered + 2.0)
        c, n = counts.get(int(label), (0, 0))
        return (c + PRIOR_ANSWERS * overall) / (n + PRIOR_ANSWERS), overall

    def to_dict(self) -> dict:
        return {"examples": {int(k): list(v) for k, v in self.examples.items()},
                "counterexamples": {int(k): list(v) for k, v in self.counterexamples.items()}}


def load_history(s, pid: int) -> History:
    """The project's answer history from its label events (one GROUP BY per side)."""
    changed = func.sum(case((LabelEvent.old_label != LabelEvent.new_label, 1), else_=0))
    rows = s.execute(select(LabelEvent.why, LabelEvent.old_label, changed,
                            func.count(LabelEvent.id))
                     .join(Example, Example.id == LabelEvent.example_id)
                     .where(Example.project_id == pid,
                            LabelEvent.why.in_(("answer_example", "answer_counterexample")),
                            LabelEvent.old_label.is_not(None))
                     .group_by(LabelEvent.why, LabelEvent.old_label)).all()
    history = History()
    for why, label, n_changed, n in rows:
        side = history.examples if why == "answer_example" else history.counterexamples
        side[int(label)] = (int(n_changed or 0), int(n))
    return history


def standout(scores) -> float:
    """How many standard deviations the best (first) of ``scores`` lies above their mean;
    0 with fewer than two candidates or no spread."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size < 2 or not np.all(np.isfinite(scores)):
        return 0.0
    spread = float(scores.std())
    if spread <= 1e-12 * max(1.0, float(np.abs(scores).max())):
        return 0.0
    return float((scores.max() - scores.mean()) / spread)


def score(margin: float, label: int, prediction: int, history: History,
          counterexample_scores=None) -> tuple[float, dict]:
    """``(priority, terms)`` of a query on an example given ``label``, predicted
    ``prediction`` with margin ``margin``; ``counterexample_scores`` are the strategy's
    ranking scores of the pertinent candidates (best first), ``None`` before the
    counter-example is known or when there is none. ``terms`` explains the number."""
    mu = min(max(float(margin), MARGIN_CLIP[0]), MARGIN_CLIP[1])
    r_label, r_all = History.rate(history.examples, label)
    p_example = _sigmoid(_logit(mu) + _logit(r_label) - _logit(r_all))
    terms = {"margin": float(margin), "class_error_rate": r_label,
             "overall_error_rate": r_all, "p_example": p_example}
    p_counter = 0.0
    if counterexample_scores is not None:
        z = standout(counterexample_scores)
        r_ce, r_ce_all = History.rate(history.counterexamples, prediction)
        p_counter = r_ce * max(z, 0.0) / (max(z, 0.0) + STANDOUT_HALF)
        terms.update({"counterexample_standout": z, "counterexample_error_rate": r_ce})
    terms["p_counterexample"] = p_counter
    value = p_example + (1.0 - p_example) * p_counter
    return float(value), terms

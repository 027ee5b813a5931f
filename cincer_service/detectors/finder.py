"""Audit orchestration: run registered detectors on one model state and combine them.

``find_issues`` creates each requested detector from the registry, runs it on the state
and isolates a failing one (its error goes to ``AuditReport.skipped``; the others still
run). Scoring detectors' rankings are combined by mean rank, since their scales differ
but their ranks compare; pair detectors (``output = "pairs"``) add duplicate pairs. The
service's audits and the ``cincer-service audit`` experiment both go through here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from ..state import ModelState
from .base import DETECTORS, NotEnoughTrusted, TrustedSet
from .duplicates import DuplicatePair

ISOLATED = (NotEnoughTrusted, ValueError, RuntimeError)


@dataclass
class Suspect:
    """One example of the combined ranking; ``index`` is its row in the state."""

    index: int
    label: int
    score: float                  # 1 − mean_rank / (n − 1): 1 = first for every detector
    scores: dict[str, float]      # each detector's own score


@dataclass
class AuditReport:
    """What ``find_issues`` found: top suspects, duplicate pairs and skipped detectors."""

    suspects: list[Suspect] = field(default_factory=list)
    pairs: list[DuplicatePair] = field(default_factory=list)
    leakage: list[DuplicatePair] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict, repr=False)

    def to_dict(self, ids=None) -> dict:
        """The JSON document an audit stores; row indices become ``ids[index]`` when given."""
        def key(index: int) -> int:
            return int(index if ids is None else ids[index])

        def pair(p: DuplicatePair) -> dict:
            return {"first": key(p.first), "second": key(p.second),
                    "similarity": float(p.similarity), "label": int(p.label),
                    "prediction": int(p.prediction)}

        return {"suspects": [{"example_id": key(s.index), "label": s.label, "score": s.score,
                              "scores": dict(s.scores)} for s in self.suspects],
                "duplicates": [pair(p) for p in self.pairs],
                "leakage": [pair(p) for p in self.leakage],
                "skipped": dict(self.skipped)}


def mean_rank(scores: Mapping[str, np.ndarray]) -> np.ndarray:
    """Mean over detectors of each example's rank (0 = most suspicious; ties by index)."""
    return np.mean([np.argsort(np.argsort(-np.asarray(v, np.float64), kind="stable"),
                               kind="stable") for v in scores.values()], axis=0)


def top_suspects(scores: Mapping[str, np.ndarray], labels, top_k: int) -> list[Suspect]:
    """The ``top_k`` examples of the mean-rank combination, most suspicious first."""
    if not scores:
        return []
    ranks = mean_rank(scores)
    scale = max(len(ranks) - 1, 1)
    return [Suspect(int(k), int(labels[k]), float(1.0 - ranks[k] / scale),
                    {name: float(v[k]) for name, v in scores.items()})
            for k in np.argsort(ranks, kind="stable")[:top_k]]


def find_issues(state: ModelState, names: Sequence[str], *, trusted: TrustedSet | None = None,
                inputs=None, top_k: int = 20,
                progress: Callable[[float, float, str], None] | None = None,
                options: Mapping[str, dict] | None = None) -> AuditReport:
    """Run the named registered detectors on ``state`` and combine their findings.

    Parameters
    ----------
    state : the known set under one model version.
    names : registered detector names, run in this order.
    trusted : the clean set ``Z′`` for the detectors that need one.
    inputs : raw inputs of the known set, row for row (pair detectors; ``state.X`` if omitted).
    top_k : how many suspects of the combined ranking to keep.
    progress : ``progress(done, total, name)`` is called before each detector.
    options : per-detector constructor options, ``{name: {option: value}}``.

    Returns
    -------
    AuditReport
        A detector raising ``NotEnoughTrusted``, ``ValueError`` or ``RuntimeError`` is
        listed in ``skipped`` (and ``errors``); the others still run.

    Raises
    ------
    ValueError
        When a name is not a registered detector (nothing runs).
    """
    unknown = [name for name in names if name not in DETECTORS]
    if unknown:
        raise ValueError(f"unknown detector(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(sorted(DETECTORS))}")
    options = options or {}
    report = AuditReport()
    for i, name in enumerate(names):
        if progress is not None:
            progress(float(i), float(len(names)), name)
        start = time.perf_counter()
        try:
            detector = DETECTORS.create(name, **options.get(name, {}))
            if detector.output == "pairs":
                found = detector.pairs(state, inputs)
                report.pairs.extend(found.pairs)
                report.leakage.extend(found.leakage)
            else:
                report.scores[name] = detector.score(state, trusted)
        except ISOLATED as exc:
            report.skipped[name], report.errors[name] = str(exc), exc
            continue
        report.seconds[name] = time.perf_counter() - start
    report.suspects = top_suspects(report.scores, state.y, top_k)
    return report

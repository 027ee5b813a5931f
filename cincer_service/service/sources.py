"""Sources: how noisy each source's labels are, online, and what to do about a pattern.

Every ingested example may name its ``source``. A source's label-noise rate is estimated
from the examples of it that a person checked (``confirmed``: answers, the consensus,
corrections, the overview): the share whose label now differs from the one it arrived
with, with a Wilson score interval (``spec.SOURCE_INTERVAL``, 90%). Its confusion pattern
counts the corrections by (given → corrected) class.

When one source's a → b labels were corrected at least ``spec.SOURCE_PATTERN_MIN`` times
(a class-interpretation error, as De-Confusion calls it), a *proposal* lists the source's
remaining unchecked a-labels that the model predicts as b (its screening prediction): one
batch relabel a person may apply (``apply_proposal``); nothing changes without them.
"""
from __future__ import annotations

import math
from statistics import NormalDist

from sqlalchemy import select

from ..spec import SOURCE_INTERVAL, SOURCE_PATTERN_MIN
from .context import TRAINING, ServiceContext, project_row
from .errors import BadInput
from .projects import label_index, label_name
from .store import Example

NO_SOURCE = None


def wilson(k: int, n: int, level: float = SOURCE_INTERVAL) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion ``k / n`` at ``level`` (None if n = 0)."""
    if n <= 0:
        return None
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _rows(s, pid: int):
    return s.execute(select(Example.id, Example.source, Example.original_label, Example.label,
                            Example.confirmed, Example.status, Example.screen_prediction)
                     .where(Example.project_id == pid, Example.status != "evaluation")
                     .order_by(Example.id)).all()


def proposals_from(rows, classes) -> list[dict]:
    """The batch relabels that the sources' correction patterns suggest."""
    patterns: dict = {}
    for r in rows:
        if r.confirmed and r.label != r.original_label:
            key = (r.source, r.original_label, r.label)
            patterns[key] = patterns.get(key, 0) + 1
    found = []
    for (source, a, b), count in sorted(patterns.items(), key=lambda kv: -kv[1]):
        if count < SOURCE_PATTERN_MIN:
            continue
        ids = [r.id for r in rows if r.source == source and not r.confirmed and r.label == a
               and r.screen_prediction == b and r.status in TRAINING + ("suspicious",
                                                                        "pending")]
        if ids:
            found.append({"source": source, "from_label": a,
                          "from_label_name": label_name(classes, a), "to_label": b,
                          "to_label_name": label_name(classes, b), "corrections": count,
                          "example_ids": ids, "count": len(ids)})
    return found


def list_sources(ctx: ServiceContext, pid: int) -> dict:
    """Every source of the project (``null``: examples without one) with its examples,
    checked examples, corrections, noise rate with its interval and confusion pattern; and
    the batch-relabel ``proposals``."""
    with ctx.store.session() as s:
        project = project_row(s, pid)
        rows = _rows(s, pid)
    classes = project.classes
    by_source: dict = {}
    for r in rows:
        by_source.setdefault(r.source, []).append(r)
    items = []
    for source in sorted(by_source, key=lambda x: (x is not None, x or "")):
        group = by_source[source]
        checked = [r for r in group if r.confirmed]
        corrected = [r for r in checked if r.label != r.original_label]
        pattern: dict = {}
        for r in corrected:
            pattern[(r.original_label, r.label)] = pattern.get((r.original_label, r.label),
                                                               0) + 1
        interval = wilson(len(corrected), len(checked))
        items.append({
            "source": source, "examples": len(group), "checked": len(checked),
            "corrected": len(corrected),
            "noise_rate": len(corrected) / len(checked) if checked else None,
            "interval": None if interval is None else list(interval),
            "confusion": [{"from_label": a, "from_label_name": label_name(classes, a),
                           "to_label": b, "to_label_name": label_name(classes, b),
                           "count": n} for (a, b), n in sorted(pattern.items(),
                                                                 key=lambda kv: -kv[1])]})
    return {"items": items, "interval_level": SOURCE_INTERVAL,
            "pattern_min": SOURCE_PATTERN_MIN, "proposals": proposals_from(rows, classes)}


def apply_proposal(ctx: ServiceContext, pid: int, source, from_label, to_label,
                   actor: str) -> dict:
    """A person applies one proposal: the source's remaining a-labels that the model
    predicts as b are relabelled (``overview_relabel``). ``BadInput`` when no such proposal
    stands now."""
    from . import overview
    with ctx.store.session() as s:
        project = project_row(s, pid)
        rows = _rows(s, pid)
    a, b = label_index(project.classes, from_label), label_index(project.classes, to_label)
    match = [p for p in proposals_from(rows, project.classes)
             if p["source"] == source and p["from_label"] == a and p["to_label"] == b]
    if not match:
        raise BadInput("no such proposal stands now", {"source": [
            f"no proposal to relabel {source!r}'s {from_label} as {to_label}"]})
    return overview.relabel_examples(
        ctx, pid, match[0]["example_ids"], b, actor,
        f"source {source!r}: its {label_name(project.classes, a)} labels were corrected to "
        f"{label_name(project.classes, b)} {match[0]['corrections']} times")

"""A simulated annotator: answers every query with the true labels from an oracle.

The oracle finds an example's true class index by its ``external_id``, whatever the ids
look like: a mapping ``{external_id: class index}`` (``"img-17"`` -> ``truth["img-17"]``;
``clients.readers.read_oracle`` builds one from a JSON object or from an example file),
or, for integer ids, an array indexed by them (``"17"`` -> ``truth[17]``).
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np

from .client import ApiError, CincerClient


class TruthLookupError(ValueError):
    """An example's ``external_id`` is not in the oracle."""


# ``{external_id: class index}``, or an array indexed by integer external ids.
Truth = Union[Mapping, np.ndarray]


@dataclass
class Answer:
    """One answered query, as sent."""

    query_id: int
    example_id: int
    example_label: int
    counterexample_id: int | None
    counterexample_label: int | None
    previous_example_label: int
    previous_counterexample_label: int | None

    def as_dict(self) -> dict:
        """The answer as a plain dict (one JSON line of ``annotate --log``)."""
        return dict(self.__dict__)


@dataclass
class AnnotationRun:
    """What an ``annotate`` call did."""

    answers: list[Answer] = field(default_factory=list)
    stopped: str = ""                 # "idle", "max_queries" or "timeout"
    lost_leases: int = 0              # answers refused with 409: the lease had expired
    stats: dict | None = None


def true_label(truth: Truth, external_id) -> int:
    """The true class index of the example with ``external_id``: ``truth[external_id]``
    for a mapping, ``truth[int(external_id)]`` for an array; ``TruthLookupError`` when the
    oracle has no label for it."""
    if isinstance(truth, Mapping):
        key = None if external_id is None else str(external_id)
        if key is None or key not in truth:
            raise TruthLookupError(f"external_id {external_id!r} is not in the oracle "
                                   f"({len(truth)} ids)")
        return int(truth[key])
    try:
        index = int(str(external_id))
    except (TypeError, ValueError):
        raise TruthLookupError(f"external_id {external_id!r} is not an integer index into "
                               "the truth array; give the oracle as a .json object or an "
                               "example file to match any id") from None
    if not 0 <= index < len(truth):
        raise TruthLookupError(f"external_id {index} is outside the truth array "
                               f"(length {len(truth)})")
    return int(truth[index])


def annotate(client: CincerClient, pid: int, truth: Truth, *,
             max_queries: int | None = None, idle_timeout: float = 3.0, poll: float = 0.3,
             timeout: float | None = None,
             on_answer: Callable[[Answer], None] | None = None) -> AnnotationRun:
    """Lease and answer queries with the true labels until none remains and the service
    has been idle (nothing to screen, no counter-example computing, no retrain wanted) for
    ``idle_timeout`` seconds, ``max_queries`` were answered, or ``timeout`` passed."""
    if not isinstance(truth, Mapping):
        truth = np.asarray(truth)
    run = AnnotationRun()
    deadline = None if timeout is None else time.monotonic() + timeout
    idle_since = None
    while True:
        if max_queries is not None and len(run.answers) >= max_queries:
            run.stopped = "max_queries"
            break
        if deadline is not None and time.monotonic() >= deadline:
            run.stopped = "timeout"
            break
        query = client.next_query(pid)
        if query is None:
            run.stats = client.stats(pid)
            if not client.is_idle(run.stats):
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= idle_timeout:
                run.stopped = "idle"
                break
            time.sleep(poll)
            continue
        idle_since = None
        example, counterexample = query["example"], query.get("counterexample")
        example_label = true_label(truth, example.get("external_id"))
        ce_label = None
        if counterexample is not None:
            ce_label = true_label(truth, counterexample.get("external_id"))
        try:
            client.answer_query(pid, query["id"], example_label, ce_label)
        except ApiError as exc:
            if exc.status != 409:
                raise
            run.lost_leases += 1        # the query went back to the pool; lease it again
            continue
        answer = Answer(query["id"], example["id"], example_label,
                        None if counterexample is None else counterexample["id"], ce_label,
                        example["label"],
                        None if counterexample is None else counterexample["label"])
        run.answers.append(answer)
        if on_answer is not None:
            on_answer(answer)
    if run.stats is None:
        run.stats = client.stats(pid)
    return run

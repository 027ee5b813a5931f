"""Label changes: the one function every door calls.

Answers, corrections, the overview's relabel / confirm / remove and ingest updates by
external id all change labels through ``change_labels``. It

* locks the project row first, then the examples in id order (the service's one lock order:
  project, then queries, then examples; ``docs/service.md``), and re-reads them, so every
  history event records the label it actually replaced and no concurrent change is lost;
* writes one ``LabelEvent`` per example with its actor, cause (``why``), query and reason;
* emits ``label.changed`` for each label that changed (indices and class names, actor,
  cause);
* tells the open queries that show one of the examples that a person labelled it, or that
  its label changed (``Query.labels_changed_at``), and asks for their refresh
  (``freshness``), so nobody sees them again before that.

``count_towards_retrain`` updates the project's counters in SQL and records the retrain
that they ask for as a follow-up.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import or_, select, update

from . import jobs, webhooks
from .context import TRAINING, project_row
from .projects import label_name
from .store import Example, LabelEvent, Project, Query, utcnow

REMOVED = "removed"                 # example status: out of the training set, kept

# The causes a label event records (``LabelEvent.why``).
CAUSES = ("ingest", "ingest_update", "answer_example", "answer_counterexample", "correction",
          "overview_relabel", "overview_confirm", "overview_remove",
          "import",   # written by service.transfer: an imported event (its cause in reason)
          "crowd_answer",   # one annotator's vote (service.crowd); the label waits for
          "consensus")      # the consensus of several answers, its own event
# Causes that count the example as checked by a person (``confirmed``; a suspicious example
# becomes ``reviewed``).
BY_A_PERSON = ("answer_example", "answer_counterexample", "correction", "overview_relabel",
               "overview_confirm", "consensus")


@dataclass(frozen=True)
class LabelChange:
    """One example's change: its new ``label`` (``None`` keeps the current one: confirm,
    remove) for ``why`` (one of ``CAUSES``)."""

    example_id: int
    label: int | None
    why: str

    def __post_init__(self):
        if self.why not in CAUSES:
            raise ValueError(f"unknown label-change cause {self.why!r}")


@dataclass
class Outcome:
    """What ``change_labels`` did: the examples that got an event, those whose label
    actually changed, and whether the training set changed."""

    recorded: list[int] = field(default_factory=list)
    relabelled: list[int] = field(default_factory=list)
    training_changed: bool = False


def change_labels(s, pid: int, changes: list[LabelChange], actor: str,
                  query_id: int | None = None, reason: str | None = None, now=None,
                  skip_unchanged: bool = False, project_lock: bool | str = True) -> Outcome:
    """Apply ``changes`` to project ``pid``'s examples in the open session ``s`` (see the
    module docstring). With ``skip_unchanged`` a change that would change nothing (same
    label; removing a removed example) records no event. Examples must belong to the
    project (``KeyError`` otherwise: callers check first). ``project_lock`` is how the
    transaction holds the project (``context.PROJECT_LOCK_MODES``): a plain answer holds it
    shared."""
    now = now or utcnow()
    project = project_row(s, pid, lock=project_lock)
    ids = sorted({c.example_id for c in changes})
    rows = {e.id: e for e in s.scalars(
        select(Example).where(Example.project_id == pid, Example.id.in_(ids))
        .order_by(Example.id).with_for_update().execution_options(populate_existing=True))}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise KeyError(f"examples {missing[:10]} are not in project {pid}")
    outcome, classes = Outcome(), project.classes
    for change in changes:
        example = rows[change.example_id]
        old = example.label
        new = old if change.label is None else int(change.label)
        removing = change.why == "overview_remove"
        if skip_unchanged and new == old and (not removing or example.status == REMOVED) \
                and change.why != "overview_confirm":
            continue
        s.add(LabelEvent(example_id=example.id, old_label=old, new_label=new, why=change.why,
                         actor=actor, query_id=query_id, reason=reason, at=now))
        outcome.recorded.append(example.id)
        if new != old:
            outcome.relabelled.append(example.id)
            webhooks.emit(s, pid, "label.changed", {
                "example_id": example.id, "external_id": example.external_id,
                "old_label": old, "old_label_name": label_name(classes, old),
                "new_label": new, "new_label_name": label_name(classes, new),
                "why": change.why, "cause": change.why, "actor": actor, "query_id": query_id,
                "reason": reason})
        outcome.training_changed |= example.status in TRAINING and (new != old or removing)
        example.label = new
        example.updated_at = now
        if change.why in BY_A_PERSON:
            example.confirmed = True
            if example.status == "suspicious":
                example.status = "reviewed"
        if removing:
            example.status = REMOVED
    touched = [c.example_id for c in changes if c.example_id in outcome.recorded
               and (c.why in BY_A_PERSON or c.why == "overview_remove"
                    or c.example_id in outcome.relabelled)]
    if touched:
        marked = s.execute(update(Query).where(
            Query.project_id == pid, Query.status.in_(("computing", "open", "leased", "collecting")),
            or_(Query.example_id.in_(touched), Query.counterexample_id.in_(touched)),
            *([Query.id != query_id] if query_id is not None else []))
            .values(labels_changed_at=now).execution_options(synchronize_session=False))
        if marked.rowcount:
            jobs.follow(s, jobs.REFRESH(pid))
    return outcome


def count_towards_retrain(s, pid: int, n: int) -> bool:
    """Bump the project's generation and count ``n`` answers or changes towards the next
    retrain, in SQL (concurrent writers never lose an update); when that reaches
    ``every_n_answers`` (and a first model exists) a retrain is wanted and follows the
    commit. Returns whether it was asked for."""
    project = project_row(s, pid)
    every = project.retrain["every_n_answers"]
    row = s.execute(update(Project).where(Project.id == pid).values(
        generation=Project.generation + 1,
        answers_since_retrain=Project.answers_since_retrain + n)
        .returning(Project.answers_since_retrain, Project.trained_generation)).one()
    if row.trained_generation < 0 or row.answers_since_retrain < every:
        return False
    taken = s.execute(update(Project).where(
        Project.id == pid, Project.answers_since_retrain >= every)
        .values(answers_since_retrain=0, wanted_generation=Project.generation)
        .execution_options(synchronize_session=False))
    if taken.rowcount == 1:
        jobs.follow(s, jobs.RETRAIN(pid))
    return taken.rowcount == 1

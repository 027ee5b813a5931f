"""A project's crowd in its JSON-lines export, and read back on import (``service.transfer``):
gold marks, the queries annotators answered with each of their answers, and the annotators.

Each example record carries

* ``gold``, ``gold_label`` and ``gold_label_name``: whether it is a gold example, and its
  trusted label;
* ``queries``: the queries about it (it is their ``example``) that hold at least one answer
  (origin, status, the counter-example by ``counterexample_external_id`` and by export
  ``counterexample_id``, the model's view, the decided answer and its ``consensus``
  posterior), each with its ``answers`` (the annotator's name, their labels, whether it was
  a gold check, its agreement and timing).

The first record also carries ``crowd``: ``annotators`` (name, suspension, the consensus
model's soft confusion counts; ``answers`` and ``flagged`` for the reader, derived) and
``state``, the project's consensus counts. **Tokens are never exported**: they are secrets.
An imported annotator answers again once an admin mints a token with their name.

Import stores the answers as they were, and derives each annotator's counts (answers,
agreement, gold record) from them, so ``GET /annotators`` of the new project gives the same
table; an imported query that was still collecting is ``closed`` (``closed_reason``
``imported``): nobody answers it again. An annotator already in the project with answers is
a ``Conflict``: import into a new project. An ``annotator`` viewer's export holds only their
own answers and annotator record (they never see anyone else's answer), and no gold marks
(a gold check looks like an audit pair to them).
"""
from __future__ import annotations

import math

from sqlalchemy import select

from .annotators import is_flagged
from .crowd import GOLD
from .errors import Conflict
from .projects import crowd_policy, label_name
from .store import Annotator, Answer, Example, Query

IMPORTED = "imported"          # closed_reason of an imported query that was still collecting


# -- export ----------------------------------------------------------------------------------
def export_crowd(s, project, time, external: dict, viewer=None) -> tuple[dict, dict | None]:
    """``({example id: [query record]}, crowd section)`` of the project; ``time`` writes a
    datetime, ``external`` maps example ids to external ids. An ``annotator`` ``viewer``
    gets only their own answers and record."""
    pid, mine_only = project.id, viewer is not None and viewer.role == "annotator"
    people = {a.id: a for a in s.scalars(select(Annotator).where(Annotator.project_id == pid)
                                         .order_by(Annotator.id))}
    if mine_only:
        people = {k: a for k, a in people.items() if a.name == viewer.name}
    answers = [a for a in s.scalars(select(Answer).where(Answer.project_id == pid,
                                                         Answer.status == "answered")
                                    .order_by(Answer.id)) if a.annotator_id in people]
    by_query: dict[int, list[Answer]] = {}
    for a in answers:
        by_query.setdefault(a.query_id, []).append(a)
    queries: dict[int, list[dict]] = {}
    for q in s.scalars(select(Query).where(Query.project_id == pid,
                                           Query.id.in_(list(by_query))).order_by(Query.id)):
        decided = not mine_only or q.answered_by == viewer.name
        origin = "audit" if mine_only and q.origin == GOLD else q.origin
        record = {"id": q.id, "origin": origin, "status": q.status,
                  "counterexample_id": q.counterexample_id,
                  "counterexample_external_id": external.get(q.counterexample_id),
                  "model_version": q.model_version, "strategy": q.strategy,
                  "margin": q.margin, "prediction": q.prediction,
                  "probabilities": q.probabilities,
                  "counterexample_probabilities": q.counterexample_probabilities,
                  "answer_example_label": q.answer_example_label if decided else None,
                  "answer_counterexample_label": (q.answer_counterexample_label if decided
                                                  else None),
                  "answered_by": q.answered_by if decided else None,
                  "answered_at": time(q.answered_at) if decided else None,
                  "created_at": time(q.created_at),
                  "consensus": None if mine_only else q.consensus,
                  "answers": [{"annotator": people[a.annotator_id].name,
                               "example_label": a.example_label,
                               "counterexample_label": a.counterexample_label,
                               "gold": None if mine_only else bool(a.gold),
                               "agreement": a.agreement,
                               "seconds": a.seconds, "leased_at": time(a.leased_at),
                               "answered_at": time(a.answered_at)}
                              for a in by_query[q.id]]}
        queries.setdefault(q.example_id, []).append(record)
    if not people:
        return queries, None
    minimum = crowd_policy(project)["min_annotator_accuracy"]
    crowd = {"annotators": [{"name": a.name, "suspended": bool(a.suspended),
                             "suspended_by": a.suspended_by,
                             "suspended_at": time(a.suspended_at),
                             "confusion": a.confusion, "created_at": time(a.created_at),
                             "answers": a.answers, "flagged": is_flagged(a, minimum)}
                            for a in people.values()],
             "state": None if mine_only else project.crowd_state}
    return queries, crowd


def gold_fields(e: Example, classes, viewer=None) -> dict:
    """An example record's gold mark (none for an ``annotator`` ``viewer``)."""
    if viewer is not None and viewer.role == "annotator":
        return {"gold": None, "gold_label": None, "gold_label_name": None}
    label = e.gold_label if e.gold else None
    return {"gold": bool(e.gold), "gold_label": label,
            "gold_label_name": label_name(classes, label)}


# -- import: reading -------------------------------------------------------------------------
def read_crowd(record: dict, classes: list, strategy: str, label, parse_time, now,
               fail) -> dict:
    """A record's gold mark, queries and crowd section, checked (problems go to ``fail``
    under their field); ``label`` reads a class (``transfer._label``)."""
    c = len(classes)
    gold = record.get("gold", False)
    if gold is None:
        gold = False
    if not isinstance(gold, bool):
        fail("gold", "true or false")
    gold_label = label(record, "gold_label", fail)
    if gold and gold_label is None:
        gold_label = label(record, "label", fail)
    queries = record.get("queries")
    parsed = []
    if queries is not None and not isinstance(queries, list):
        fail("queries", "a list of queries")
    for j, q in enumerate(queries or []):
        parsed.append(_read_query(q, f"queries.{j}", classes, c, strategy, label, parse_time,
                                  now, fail))
    crowd = record.get("crowd")
    if crowd is not None:
        crowd = _read_section(crowd, c, parse_time, now, fail)
    return {"gold": bool(gold), "gold_label": gold_label if gold else None,
            "queries": parsed, "crowd": crowd}


def _read_query(q, where: str, classes, c: int, strategy: str, label, parse_time, now,
                fail) -> dict | None:
    if not isinstance(q, dict):
        fail(where, "an object: a query with its answers")
        return None

    def bad(key, message):
        fail(f"{where}.{key}", message)

    out = {"origin": _text(q, "origin", 20, "stream", bad),
           "status": _text(q, "status", 20, "answered", bad),
           "strategy": _text(q, "strategy", 50, strategy, bad),
           "answered_by": _text(q, "answered_by", 200, None, bad),
           "model_version": _integer(q, "model_version", 0, bad),
           "export_id": _integer(q, "id", None, bad),
           "counterexample_id": _integer(q, "counterexample_id", None, bad),
           "counterexample_external_id": _text(q, "counterexample_external_id", 10**6, None,
                                               bad),
           "margin": _number(q, "margin", 0.0, bad),
           "probabilities": _vector(q, "probabilities", c, bad) or [1.0 / c] * c,
           "counterexample_probabilities": _vector(q, "counterexample_probabilities", c, bad),
           "created_at": parse_time(q.get("created_at"), now, f"{where}.created_at", fail),
           "answered_at": parse_time(q.get("answered_at"), now, f"{where}.answered_at", fail)}
    out["prediction"] = label(q, "prediction", bad)
    if out["prediction"] is None:
        out["prediction"] = int(max(range(c), key=lambda k: out["probabilities"][k]))
    out["answer_example_label"] = label(q, "answer_example_label", bad)
    out["answer_counterexample_label"] = label(q, "answer_counterexample_label", bad)
    consensus = q.get("consensus")
    if consensus is not None and not (isinstance(consensus, dict) and all(
            v is None or _is_vector(v, c) for v in consensus.values())):
        bad("consensus", "an object of side posteriors (lists of class probabilities)")
        consensus = None
    out["consensus"] = consensus
    answers = q.get("answers")
    if not isinstance(answers, list):
        bad("answers", "a list of answers")
        answers = []
    out["answers"], names = [], set()
    for at, a, bad_answer in _objects(answers, f"{where}.answers",
                                      "annotator, example_label, counterexample_label, ...",
                                      fail):
        name = _text(a, "annotator", 200, None, bad_answer)
        if not name:
            bad_answer("annotator", "the annotator's name")
        elif name in names:
            bad_answer("annotator", "one answer per annotator and query")
        names.add(name)
        gold = a.get("gold", False)
        if not isinstance(gold, bool):
            bad_answer("gold", "true or false")
        answered_at = parse_time(a.get("answered_at"), now, f"{at}.answered_at", fail)
        out["answers"].append({
            "annotator": name, "gold": gold is True,
            "example_label": label(a, "example_label", bad_answer),
            "counterexample_label": label(a, "counterexample_label", bad_answer),
            "agreement": _number(a, "agreement", None, bad_answer),
            "seconds": _number(a, "seconds", None, bad_answer),
            "leased_at": parse_time(a.get("leased_at"), answered_at, f"{at}.leased_at", fail),
            "answered_at": answered_at})
    return out


def _objects(items: list, where: str, shape: str, fail):
    """``(path, item, bad)`` for each object of ``items``, where ``bad(key, message)``
    reports a field of it; an item that is not an object is reported at its path."""
    for k, item in enumerate(items):
        at = f"{where}.{k}"
        if not isinstance(item, dict):
            fail(at, f"an object: {shape}")
            continue
        yield at, item, (lambda key, message, _at=at: fail(f"{_at}.{key}", message))


def _read_section(crowd, c: int, parse_time, now, fail) -> dict | None:
    if not isinstance(crowd, dict):
        fail("crowd", "an object: annotators and state")
        return None
    state = crowd.get("state")
    if state is not None and not _is_state(state, c):
        fail("crowd.state", f"the consensus counts of {c} classes (c, class_counts, the "
                            "model's confusion counts)")
        state = None
    people = crowd.get("annotators")
    if not isinstance(people, list):
        fail("crowd.annotators", "a list of annotators")
        people = []
    out, names = [], set()
    for at, a, bad in _objects(people, "crowd.annotators", "name, suspended, confusion, ...",
                              fail):
        name = _text(a, "name", 200, None, bad)
        if not name or name in names:
            bad("name", "a name, once per annotator")
        names.add(name)
        suspended = a.get("suspended", False)
        if not isinstance(suspended, bool):
            bad("suspended", "true or false")
        confusion = a.get("confusion")
        if confusion is not None and not _is_matrix(confusion, c):
            bad("confusion", f"a {c}×{c} matrix of non-negative counts")
        out.append({"name": name, "suspended": suspended is True,
                    "suspended_by": _text(a, "suspended_by", 200, None, bad),
                    "suspended_at": (parse_time(a.get("suspended_at"), now,
                                                f"{at}.suspended_at", fail)
                                     if suspended is True else None),
                    "confusion": confusion,
                    "created_at": parse_time(a.get("created_at"), now, f"{at}.created_at",
                                             fail)})
    return {"annotators": out, "state": state}


def _is_state(state, c: int) -> bool:
    """Whether ``state`` is a project's consensus counts (``Crowd.to_json``): ``c``, the
    class counts, and c×c matrices (``model``, or several under ``models``)."""
    if not isinstance(state, dict) or state.get("c") != c:
        return False
    models = state.get("models") or {}
    return (state.get("class_counts") is None or _is_vector(state["class_counts"], c)) \
        and (state.get("model") is None or _is_matrix(state["model"], c)) \
        and isinstance(models, dict) and all(_is_matrix(m, c) for m in models.values())


def _text(d: dict, key: str, size: int, default, bad):
    value = d.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > size:
        bad(key, f"a string of at most {size} characters")
        return default
    return value


def _integer(d: dict, key: str, default, bad):
    value = d.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        bad(key, "an integer")
        return default
    return value


def _number(d: dict, key: str, default, bad):
    value = d.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        bad(key, "a finite number")
        return default
    return float(value)


def _is_vector(value, c: int) -> bool:
    return isinstance(value, list) and len(value) == c and all(
        not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
        and v >= 0 for v in value)


def _is_matrix(value, c: int) -> bool:
    return isinstance(value, list) and len(value) == c and all(_is_vector(r, c) for r in value)


def _vector(d: dict, key: str, c: int, bad):
    value = d.get(key)
    if value is None:
        return None
    if not _is_vector(value, c):
        bad(key, f"a list of {c} probabilities")
        return None
    return [float(v) for v in value]


# -- import: storing -------------------------------------------------------------------------
def store_crowd(s, project, stored: list[tuple[Example, dict, int | None]]) -> dict:
    """Store the crowd parts of the imported records: ``stored`` holds each new example,
    its ``read_crowd`` result and its export id. Returns ``{"queries": {old id: new id},
    "counts": {queries, answers, annotators}}``."""
    pid = project.id
    by_export = {old: e.id for e, _, old in stored if old is not None}
    people = {a.name: a for a in s.scalars(select(Annotator).where(
        Annotator.project_id == pid))}
    touched: set[str] = set()
    for _, crowd, _ in stored:
        section = crowd["crowd"]
        if section is None:
            continue
        for a in section["annotators"]:
            row = people.get(a["name"])
            if row is not None and row.answers:
                raise Conflict(f"annotator {a['name']!r} already has answers in this "
                               "project; import into a new project",
                               {"annotator": a["name"]})
            if row is None:
                row = people[a["name"]] = Annotator(project_id=pid, name=a["name"])
                s.add(row)
            row.suspended, row.suspended_by = a["suspended"], a["suspended_by"]
            row.suspended_at, row.confusion = a["suspended_at"], a["confusion"]
            row.created_at = a["created_at"]
            touched.add(a["name"])
        if section["state"] is not None and not project.crowd_state:
            project.crowd_state = section["state"]
    mapping, answers = {}, 0
    for example, crowd, _ in stored:
        for q in crowd["queries"]:
            counter = _counterexample(s, pid, q, by_export)
            status = q["status"] if q["status"] == "answered" else "closed"
            row = Query(project_id=pid, example_id=example.id, counterexample_id=counter,
                        model_version=q["model_version"], strategy=q["strategy"],
                        margin=q["margin"], prediction=q["prediction"],
                        probabilities=q["probabilities"],
                        counterexample_probabilities=(q["counterexample_probabilities"]
                                                      if counter is not None else None),
                        origin=q["origin"], status=status,
                        answer_example_label=q["answer_example_label"],
                        answer_counterexample_label=q["answer_counterexample_label"],
                        answered_by=q["answered_by"],
                        answered_at=q["answered_at"] if status == "answered" else None,
                        consensus=q["consensus"], created_at=q["created_at"],
                        closed_reason=None if status == "answered" else IMPORTED,
                        closed_at=None if status == "answered" else q["answered_at"])
            s.add(row)
            s.flush()
            if q["export_id"] is not None:
                mapping[q["export_id"]] = row.id
            for a in q["answers"]:
                person = people.get(a["annotator"])
                if person is None:
                    person = people[a["annotator"]] = Annotator(
                        project_id=pid, name=a["annotator"], created_at=a["answered_at"])
                    s.add(person)
                    s.flush()
                elif person.id is None:
                    s.flush()
                touched.add(a["annotator"])
                s.add(Answer(project_id=pid, query_id=row.id, annotator_id=person.id,
                             token_id=None, status="answered", leased_at=a["leased_at"],
                             answered_at=a["answered_at"], example_label=a["example_label"],
                             counterexample_label=a["counterexample_label"], gold=a["gold"],
                             agreement=a["agreement"], seconds=a["seconds"]))
                answers += 1
    s.flush()
    for name in touched:
        recount(s, people[name])
    return {"queries": mapping, "counts": {"queries": len(mapping), "answers": answers,
                                           "annotators": len(touched)}}


def _counterexample(s, pid: int, q: dict, by_export: dict) -> int | None:
    """The imported query's counter-example in the new project: by external id (also one
    imported by an earlier request), else by export id within this request."""
    if q["counterexample_external_id"] is not None:
        found = s.scalar(select(Example.id).where(
            Example.project_id == pid,
            Example.external_id == q["counterexample_external_id"]))
        if found is not None:
            return found
    return by_export.get(q["counterexample_id"])


def recount(s, a: Annotator) -> None:
    """An annotator's counts from their answers: what answering added up (``annotators``:
    one per answer; the agreement summed; a gold check correct when every side was)."""
    rows = s.scalars(select(Answer).where(Answer.annotator_id == a.id,
                                          Answer.status == "answered")).all()
    a.answers = len(rows)
    a.agreement = float(sum(r.agreement or 0.0 for r in rows))
    a.gold_answers = sum(1 for r in rows if r.gold)
    a.gold_correct = sum(1 for r in rows if r.gold and r.agreement == 1.0)

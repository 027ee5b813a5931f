"""schemathesis against the API's own OpenAPI document (``/api/v1/openapi.json``): thousands
of generated requests with the admin token, zero server errors (5xx).

The app runs in-process (WSGI) on a SQLite file, and on PostgreSQL when
``CINCER_TEST_POSTGRES_URL`` answers. A seeded project (model, open queries, an answered
query, an audit, tokens) gives the generated paths ids that exist: most generated requests
name it (``pid``, ``qid``, ``eid``, ``aid``, ``tid``, ``wid``) instead of a random id.
Background jobs are dropped (``NullDispatcher``) while fuzzing, so nothing runs behind the
requests and nothing leaves the process (webhooks are never delivered).
"""
from __future__ import annotations

import json
import logging
import math
import time
import traceback
from collections import Counter

import pytest

from cincer_service.service import (
    NullDispatcher,
    Settings,
    access,
    build_context,
    jobs,
    runner,
)
from cincer_service.service.store import Query
from tests.support.services import HEAVY_DATABASES, postgres_database

from .cluster import BOOTSTRAP, DIMENSIONS, answer_body, synthetic

pytestmark = pytest.mark.integration

# Test dependencies (the `test` extra): schemathesis, which brings hypothesis. Imported
# plainly: a missing one fails the run instead of skipping the fuzz tests.
import schemathesis  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ADMIN = "fuzz-admin-secret"
API = "/api/v1"


@pytest.fixture(params=HEAVY_DATABASES)
def fuzz_database(request, tmp_path):
    if request.param == "sqlite":
        yield request.param, f"sqlite:///{tmp_path / 'fuzz.db'}"
        return
    with postgres_database() as url:
        assert url is not None, "CINCER_TEST_POSTGRES_URL is set but PostgreSQL does not answer"
        yield request.param, url


class Seeded:
    """Ids that exist, for the generated paths; sacrificial ones for DELETEs."""

    def __init__(self, app, ctx):
        self.app, self.ctx = app, ctx
        self.client = app.test_client()
        self.auth = {"Authorization": f"Bearer {ADMIN}"}
        data = synthetic(80)
        self.pid = self._post(f"{API}/projects", {
            "name": "fuzz", "classes": ["a", "b"], "input_shape": [DIMENSIONS],
            "model": {"kind": "lr", "max_epochs": 30}, "threshold": 0.0,
            "strategy": "top_fisher", "bootstrap_size": BOOTSTRAP,
            "retrain": {"mode": "warm", "every_n_answers": 1000}})["id"]
        self.tokens = {role: self._post(f"{API}/projects/{self.pid}/tokens",
                                        {"role": role, "name": f"fuzz-{role}"})
                       for role in ("ingest", "annotator", "viewer")}
        items = [data.item(i, flipped=i >= BOOTSTRAP) for i in range(len(data.X))]
        created = self._post(f"{API}/projects/{self.pid}/examples", {"items": items}, 202)
        self.eids = [r["id"] for r in created["items"]]
        # The first model, screening, counter-examples: run inline, once.
        runner.run_job(ctx, jobs.RETRAIN(self.pid))
        runner.run_job(ctx, jobs.SCREEN(self.pid))
        with ctx.store.session() as s:
            computing = s.query(Query.id).filter(Query.status == "computing").all()
        for (qid,) in computing:
            runner.run_job(ctx, jobs.COUNTEREXAMPLE(qid))
        with ctx.store.session() as s:
            self.qids = [q for (q,) in s.query(Query.id).filter(Query.project_id == self.pid)
                         .order_by(Query.id).all()]
        assert len(self.qids) >= 20, "the seeded project has too few queries"
        # One answered query (for /correct), one leased by the admin (for /release).
        annotator = {"Authorization": f"Bearer {self.tokens['annotator']['token']}"}
        leased = self.client.post(f"{API}/projects/{self.pid}/queries/next", headers=annotator)
        assert leased.status_code == 200, leased.get_json()
        query = leased.get_json()
        answered = self.client.post(
            f"{API}/projects/{self.pid}/queries/{query['id']}/answer", headers=annotator,
            json=answer_body(query, lambda e: data.truth[int(e["external_id"][1:])]))
        assert answered.status_code == 200, answered.get_json()
        assert self.client.post(f"{API}/projects/{self.pid}/queries/next",
                                headers=self.auth).status_code == 200
        audit = self.client.post(f"{API}/projects/{self.pid}/audits", headers=self.auth,
                                 json={"detectors": ["margin"], "top_k": 5})
        self.aids = [audit.get_json()["id"]] if audit.status_code in (200, 201, 202) else []
        hook = self.client.post(f"{API}/projects/{self.pid}/webhooks", headers=self.auth,
                                json={"url": "http://127.0.0.1:9/hook"})
        self.wids = [hook.get_json()["id"]] if hook.status_code in (200, 201) else []
        self.tids = [t["id"] for t in self.tokens.values()]
        self.classes = ["a", "b", 0, 1]
        self.sacrificial_projects: list[int] = []
        self.sacrificial_tokens: list[int] = []

    def _post(self, path, body, status=201):
        response = self.client.post(path, json=body, headers=self.auth)
        assert response.status_code == status, (path, response.status_code, response.get_json())
        return response.get_json()

    def sacrificial_project(self) -> int:
        if not self.sacrificial_projects:
            self.sacrificial_projects.append(self._post(f"{API}/projects", {
                "name": "to-delete", "classes": ["a", "b"], "input_shape": [2]})["id"])
        return self.sacrificial_projects[0]

    def sacrificial_token(self) -> int:
        if not self.sacrificial_tokens:
            self.sacrificial_tokens.append(self._post(
                f"{API}/projects/{self.pid}/tokens", {"role": "viewer", "name": "to-revoke"})["id"])
        return self.sacrificial_tokens[0]

    def deleted(self, method: str, path: str, status: int) -> None:
        """Forget a sacrificial id once a DELETE removed it."""
        if method == "DELETE" and status < 300:
            if path == "/api/v1/projects/{pid}":
                self.sacrificial_projects.clear()
            elif path.endswith("/tokens/{tid}"):
                self.sacrificial_tokens.clear()

    def existing(self, method: str, path: str, name: str, draw):
        """An id that exists for path parameter ``name`` (None: keep the generated one)."""
        if method == "DELETE" and path == "/api/v1/projects/{pid}" and name == "pid":
            return self.sacrificial_project()
        if method == "DELETE" and name == "tid":
            return self.sacrificial_token()
        pools = {"pid": [self.pid], "qid": self.qids, "eid": self.eids, "aid": self.aids,
                 "wid": self.wids, "tid": self.tids, "label": self.classes,
                 "prediction": self.classes}
        pool = pools.get(name)
        return draw(st.sampled_from(pool)) if pool else None


class ErrorLog(logging.Handler):
    """Keeps the tracebacks the app logs for unexpected errors (its 500 handler)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record):
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.records.append(text)


# Explicit examples: inputs that were 500s or confusing answers (issue 19 §3, issue 24 §5).
# Sent once per run, before the generated cases, each with the answer it must get.
LONE = "ok\ud800"                      # a lone UTF-16 surrogate
DEEP = 5000                            # levels of nesting (the limit is 64)


def explicit_edge_cases(seeded: Seeded, operations) -> list[tuple]:
    """``(label, method, url, raw JSON body, status, code, field)``: a lone surrogate and a
    5,000-deep body for every body-taking operation of the document, then one case per
    finding."""
    ids = {"pid": seeded.pid, "qid": seeded.qids[0], "eid": seeded.eids[0],
           "tid": seeded.tids[0], "aid": (seeded.aids or [1])[0], "wid": (seeded.wids or [1])[0]}
    cases = []
    for operation in operations:
        method = operation.method.upper()
        if method not in ("POST", "PUT", "PATCH"):
            continue
        url, label = operation.path.format(**ids), f"{method} {operation.path}"
        cases.append((f"{label}: lone surrogate", method, url, json.dumps({"note": LONE}),
                      422, "validation_error", "note"))
        cases.append((f"{label}: nested {DEEP} deep", method, url, "[" * DEEP + "]" * DEEP,
                      400, "too_deep", None))
    examples = f"{API}/projects/{seeded.pid}/examples"

    def item(**changes):
        return json.dumps({"items": [{"x": [0.5] * DIMENSIONS, "label": 0, **changes}]})
    cases += [
        ("surrogate in a class name", "POST", f"{API}/projects", json.dumps(
            {"name": "p", "classes": ["a", "b" + LONE], "input_shape": [2]}), 422,
         "validation_error", "classes.1"),
        ("surrogate in text", "POST", examples, item(text=LONE), 422, "validation_error",
         "items.0.text"),
        ("x nested 5000 deep", "POST", examples,
         '{"items": [{"x": ' + "[" * DEEP + "]" * DEEP + ', "label": 0}]}', 400, "too_deep",
         None),
        ("invalid JSON", "POST", f"{API}/projects", '{"name": ', 400, "invalid_json", None),
        ("1e300 in x", "POST", examples, item(x=[1e300] * DIMENSIONS), 422,
         "validation_error", "items.0.x"),
        ("integer external_id", "POST", examples, item(external_id=7), 422,
         "validation_error", "items.0.external_id"),
        ("label out of range (the service's 422)", "POST", examples, item(label=7), 422,
         "validation_error", "items.0.label"),
        ("project id 2^70", "GET", f"{API}/projects/{2**70}", None, 404, "not_found", "pid"),
        ("project id -1", "GET", f"{API}/projects/-1/stats", None, 404, "not_found", "pid"),
    ]
    return cases


def send_explicit_edge_cases(seeded: Seeded, operations, statuses: Counter) -> list[str]:
    """Send the explicit examples; the ones that did not get their answer, described."""
    wrong = []
    cases = explicit_edge_cases(seeded, operations)
    for label, method, url, raw, status, code, field in cases:
        response = seeded.client.open(url, method=method, data=raw, headers={
            **seeded.auth, **({"Content-Type": "application/json"} if raw else {})})
        statuses[response.status_code] += 1
        error = (response.get_json(silent=True) or {}).get("error") or {}
        if (response.status_code != status or error.get("code") != code
                or (field is not None and field not in (error.get("details") or {}))):
            wrong.append(f"{label}: {method} {url} -> {response.status_code} "
                         f"{response.get_data(as_text=True)[:300]}")
    assert len(cases) >= 2 * 10, len(cases)        # two per body-taking operation at least
    return wrong


def fuzz(app, seeded: Seeded, target: int, max_rounds: int = 12) -> dict:
    """Generate at least ``target`` requests over every operation; returns the tally."""
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [f"{o.method} {o.path}" for o in operations]
    # Operations with few inputs run out of new cases early: ask the others for more.
    per_round = max(5, math.ceil(1.4 * target / len(operations)))
    statuses, per_operation, failures = Counter(), Counter(), {}
    errors = ErrorLog()
    sent = 0

    def send(case, data, label: str) -> None:
        """One generated request, aimed at existing ids most of the time."""
        nonlocal sent
        method, path = case.method.upper(), case.path
        for name in list(case.path_parameters or {}):
            if data.draw(st.integers(0, 99)) < 80:
                value = seeded.existing(method, path, name, data.draw)
                if value is not None:
                    case.path_parameters[name] = value
        errors.records.clear()
        response = case.call(headers=seeded.auth)
        sent += 1
        statuses[response.status_code] += 1
        per_operation[label] += 1
        seeded.deleted(method, path, response.status_code)
        if response.status_code >= 500:
            where = (errors.records[-1].strip().splitlines()[-1] if errors.records
                     else response.text[:200])
            failures.setdefault((label, response.status_code, where), {
                "method": method, "path": case.formatted_path, "query": case.query,
                "body": repr(case.body)[:1000], "status": response.status_code,
                "response": response.text[:500],
                "traceback": errors.records[-1][-4000:] if errors.records else None,
                "count": 0})["count"] += 1

    def run_operation(operation, round_: int) -> None:
        label = f"{operation.method.upper()} {operation.path}"

        @seed(1000 * round_ + len(label))
        @settings(max_examples=per_round, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck),
                  phases=[Phase.explicit, Phase.generate])
        @given(case=operation.as_strategy(), data=st.data())
        def one(case, data):
            send(case, data, label)

        one()

    app.logger.addHandler(errors)
    try:
        explicit = send_explicit_edge_cases(seeded, operations, statuses)
        for round_ in range(max_rounds):
            for operation in operations:
                run_operation(operation, round_)
            if sent >= target:
                break
    finally:
        app.logger.removeHandler(errors)
    return {"requests": sent, "server_errors": sum(n for s, n in statuses.items() if s >= 500),
            "statuses": dict(sorted(statuses.items())), "operations": len(operations),
            "rounds": round_ + 1, "per_operation": dict(per_operation),
            "failures": list(failures.values()), "explicit_wrong": explicit}


def run_fuzz(tmp_path, database, target, record):
    from api import create_app
    kind, url = database
    ctx = build_context(Settings(data_dir=str(tmp_path / "data"), database_url=url,
                                 admin_token=ADMIN))
    ctx.set_dispatcher(runner.inline_dispatcher(ctx))
    access.ensure_admin_token(ctx, ADMIN)
    app = create_app(service=ctx)
    seeded = Seeded(app, ctx)
    ctx.set_dispatcher(NullDispatcher())
    started = time.monotonic()
    try:
        result = fuzz(app, seeded, target)
    finally:
        ctx.store.engine.dispose()
    seconds = round(time.monotonic() - started, 1)
    summary = {k: v for k, v in result.items()
               if k not in ("per_operation", "failures", "explicit_wrong")}
    record({"database": kind, "seconds": seconds, **summary,
            "failures": [{k: v for k, v in f.items() if k != "traceback"}
                         for f in result["failures"]]})
    for failure in result["failures"]:
        print(f"\n5xx x{failure['count']}: {failure['method']} {failure['path']} "
              f"query={failure['query']} body={failure['body'][:300]}\n"
              f"{failure['traceback'] or failure['response']}")
    assert result["requests"] >= target
    assert result["explicit_wrong"] == [], "\n".join(result["explicit_wrong"])
    # The seeded project and the admin token survived the run.
    client = app.test_client()
    assert client.get(f"{API}/projects/{seeded.pid}",
                      headers=seeded.auth).status_code == 200
    assert result["server_errors"] == 0, "\n\n".join(
        f"{f['count']} x HTTP {f['status']}: {f['method']} {f['path']} query={f['query']} "
        f"body={f['body'][:300]}\n{(f['traceback'] or f['response'])[-1500:]}"
        for f in result["failures"])


def test_fuzz_openapi_no_server_errors(tmp_path, fuzz_database, record):
    run_fuzz(tmp_path, fuzz_database, 1000, record)


@pytest.mark.long
def test_fuzz_openapi_no_server_errors_long(tmp_path, fuzz_database, record):
    run_fuzz(tmp_path, fuzz_database, 5000, record)

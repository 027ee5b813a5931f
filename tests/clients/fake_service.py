"""A tiny in-memory stand-in for the labeling service's HTTP API, on 127.0.0.1, for the
client and CLI unit tests. It speaks the same routes and error shape; its "screening" is a
rule: an example ingested with label 2 gets a query whose counter-example is example 1.
Project 1 always exists; the admin endpoints (settings, history, tokens, audits, models,
overview, webhooks) keep just enough state to answer like the service does."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

TOKEN = "secret-token"


class FakeService:
    def __init__(self):
        self.lock = threading.Lock()
        self.project = {"id": 1, "name": "fake", "classes": ["a", "b", "c"],
                        "input_shape": [2, 2], "model_version": 1}
        self.examples: list[dict] = []
        self.queries: list[dict] = []
        self.requests: list[tuple[str, str, dict | None]] = []
        self.fail_next: list[int] = []          # statuses to answer the next requests with
        self.expire_leases = 0                  # answers to refuse as on an expired lease
        self.created: list[dict] = []           # projects made by POST /projects (id >= 2)
        self.history: list[dict] = []
        self.tokens: list[dict] = []
        self.audits: list[dict] = []
        self.models = [{"version": 1, "train_size": 4, "mode": "scratch", "generation": 1,
                        "metrics": {}, "created_at": "2024-01-01T00:00:00+00:00"}]
        self.webhooks: list[dict] = []
        self.deleted = False

    # -- routes ------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict, body, token: str | None):
        self.requests.append((method, path, body))
        if self.fail_next:
            status = self.fail_next.pop(0)
            return status, error("boom", f"injected {status}")
        if path == "/healthz":
            return 200, {"status": "ok"}
        if token != TOKEN:
            return 401, error("unauthorized", "unknown token")
        if path == "/api/v1/openapi.json":
            return 200, {"openapi": "3.0.3", "paths": {}}
        parts = path.removeprefix("/api/v1/").split("/")
        if parts == ["projects"]:
            with self.lock:
                return self.projects_root(method, body)
        if parts[0] != "projects" or len(parts) < 2:
            return 404, error("not_found", f"no route {path}")
        if parts[1] != "1" or self.deleted:
            return 404, error("not_found", f"project {parts[1]} does not exist",
                              {"project_id": int(parts[1])})
        rest = parts[2:]
        with self.lock:
            admin = self.admin_routes(method, rest, query, body)
            if admin is not None:
                return admin
            if not rest and method == "GET":
                return 200, self.project
            if rest == ["examples"] and method == "POST":
                return self.ingest(body)
            if rest == ["examples"] and method == "GET":
                offset, limit = int(query.get("offset", 0)), int(query.get("limit", 50))
                return 200, {"items": self.examples[offset:offset + limit],
                             "total": len(self.examples)}
            if len(rest) == 2 and rest[0] == "examples":
                return 200, self.examples[int(rest[1]) - 1]
            if rest == ["queries", "next"]:
                for q in self.queries:
                    if q["status"] == "open":
                        q["status"] = "leased"
                        return 200, self.query_dict(q)
                return 204, None
            if len(rest) == 3 and rest[2] == "answer":
                return self.answer(int(rest[1]), body)
            if rest == ["stats"]:
                counts = {}
                for q in self.queries:
                    counts[q["status"]] = counts.get(q["status"], 0) + 1
                return 200, {"examples": {"pending": 0}, "queries": counts,
                             "retrain_wanted": False, "model_version": 1}
            if rest == ["export"]:
                fmt = query.get("format", "csv")
                if fmt == "jsonl":
                    return 200, "".join(json.dumps(e) + "\n" for e in self.examples)
                return 200, "id,label\n" + "".join(f"{e['id']},{e['label']}\n"
                                                   for e in self.examples)
        return 404, error("not_found", f"no route {method} {path}")

    # -- admin routes ------------------------------------------------------------------------
    def projects_root(self, method, body):
        if method == "GET":
            return 200, {"items": [self.project] + self.created}
        required = ("name", "classes") + (() if (body or {}).get("input_kind") == "text"
                                          else ("input_shape",))
        missing = [k for k in required if k not in (body or {})]
        if missing:
            return 422, error("validation_error", "the request did not validate; see details",
                              {k: ["Missing data for required field."] for k in missing})
        project = {"threshold": 0.2, "strategy": "top_fisher", "damping": 1.0,
                   "bootstrap_size": 100, "model": {"kind": "fc"},
                   "retrain": {"mode": "scratch", "every_n_answers": 10}, **body,
                   "id": 2 + len(self.created), "model_version": None}
        self.created.append(project)
        return 201, project

    def admin_routes(self, method, rest, query, body):
        """The answer to an admin endpoint, or None for the routes handled further on."""
        pid = self.project["id"]
        if not rest and method == "PATCH":
            fixed = [k for k in ("name", "classes", "input_shape", "model") if k in body]
            bad = [k for k in ("threshold",) if k in body and not 0 <= body[k] <= 1]
            if fixed or bad or not body:
                return 422, error("validation_error", "the request did not validate",
                                  {**{k: ["cannot be changed after creation"] for k in fixed},
                                   **{k: ["out of range"] for k in bad}})
            changes = {}
            for key, value in body.items():
                old = self.project.get(key)
                new = {**(old or {}), **value} if isinstance(value, dict) else value
                changes[key] = {"old": old, "new": new}
                self.project[key] = new
            self.history.append({"id": len(self.history) + 1, "project_id": pid,
                                 "actor": "admin", "changes": changes,
                                 "at": "2024-01-01T00:00:00+00:00"})
            return 200, self.project
        if not rest and method == "DELETE":
            self.deleted = True
            return 204, None
        if rest == ["history"]:
            return 200, {"items": self.history}
        if rest == ["tokens"] and method == "POST":
            token = {"id": len(self.tokens) + 2, "project_id": pid, "role": body["role"],
                     "name": body.get("name") or body["role"],
                     "created_at": "2024-01-01T00:00:00+00:00", "revoked": False}
            self.tokens.append(token)
            return 201, {**token, "token": f"secret-{token['id']}"}
        if rest == ["tokens"] and method == "GET":
            return 200, {"items": self.tokens}
        if len(rest) == 2 and rest[0] == "tokens" and method == "DELETE":
            token = next((t for t in self.tokens if t["id"] == int(rest[1])), None)
            if token is None:
                return 404, error("not_found", f"token {rest[1]} does not exist in project 1")
            if token["revoked"]:
                return 409, error("conflict", f"token {rest[1]} is already revoked")
            token["revoked"] = True
            return 204, None
        if rest == ["queries"] and method == "GET":
            found = [self.query_dict(q) for q in self.queries
                     if query.get("status") in (None, q["status"])]
            offset, limit = int(query.get("offset", 0)), int(query.get("limit", 50))
            return 200, {"items": found[offset:offset + limit], "total": len(found)}
        if len(rest) == 2 and rest[0] == "queries" and rest[1] != "next" and method == "GET":
            return self.with_query(rest[1], lambda q: (200, self.query_dict(q)))
        if len(rest) == 3 and rest[0] == "queries" and rest[2] == "release":
            def release(q):
                if q["status"] not in ("open", "leased"):
                    return 409, error("conflict", f"this query is {q['status']}")
                q["status"] = "open"
                return 200, self.query_dict(q)
            return self.with_query(rest[1], release)
        if len(rest) == 3 and rest[0] == "queries" and rest[2] == "correct":
            def correct(q):
                if q["status"] != "answered":
                    return 409, error("conflict", "the query is not answered yet")
                return 200, {**self.query_dict(q), "answer": body}
            return self.with_query(rest[1], correct)
        if rest == ["models"]:
            return 200, {"items": self.models}
        if rest == ["models", "retrain"]:
            return 202, {"status": "queued", "wanted_generation": 2}
        if rest == ["audits"] and method == "POST":
            audit = {"id": len(self.audits) + 1, "project_id": pid, "status": "done",
                     "detectors": body["detectors"], "top_k": body.get("top_k", 20),
                     "suspects": [{"example_id": 1, "label": 0, "score": 1.0}]}
            self.audits.append(audit)
            return 202, audit
        if rest == ["audits"] and method == "GET":
            offset, limit = int(query.get("offset", 0)), int(query.get("limit", 50))
            newest = self.audits[::-1]
            return 200, {"items": newest[offset:offset + limit], "total": len(newest)}
        if len(rest) >= 2 and rest[0] == "audits":
            aid = int(rest[1])
            if not 1 <= aid <= len(self.audits):
                return 404, error("not_found", f"audit {aid} does not exist in project 1")
            if len(rest) == 2:
                return 200, self.audits[aid - 1]
            return 200, {"audit_id": aid, "query_ids": [7], "enqueued": 1,
                         "top_k": (body or {}).get("top_k")}
        if rest and rest[0] == "overview":
            return self.overview(method, rest[1:], query, body)
        if rest and rest[0] == "webhooks":
            return self.webhook(method, rest[1:], query, body)
        return None

    def with_query(self, qid, then):
        qid = int(qid)
        if not 1 <= qid <= len(self.queries):
            return 404, error("not_found", f"query {qid} does not exist in project 1")
        return then(self.queries[qid - 1])

    def overview(self, method, rest, query, body):
        if not rest:
            return (202 if method == "POST" else 200), {"status": "computing"}
        if rest[0] == "cells":
            return 200, {"label": int(rest[1]), "prediction": int(rest[2]),
                         "min_score": float(query.get("min_score", 0)),
                         "max_score": float(query.get("max_score", 1)), "items": []}
        if rest == ["actions"]:
            return 200, {"action": body["action"], "changed": len(body["example_ids"]),
                         "body": body}
        if rest == ["progress"]:
            return 200, {"items": [{"model_version": 1, "answers": 0}]}
        if rest == ["progress.png"]:
            return 200, "PNG fake"
        return 404, error("not_found", "no such overview route")

    def webhook(self, method, rest, query, body):
        if not rest and method == "POST":
            hook = {"id": len(self.webhooks) + 1, "url": body["url"],
                    "events": body.get("events") or ["query.answered"], "active": True}
            self.webhooks.append(hook)
            return 201, {**hook, "secret": "whsec_fake"}
        if not rest:
            return 200, {"items": [h for h in self.webhooks if h["active"]]}
        hook = self.webhooks[int(rest[0]) - 1]
        if method == "DELETE":
            hook["active"] = False
            return 204, None
        return 200, {"items": [], "total": 0, "offset": int(query.get("offset", 0))}

    def ingest(self, body):
        items = body.get("items") if isinstance(body, dict) else None
        if not items:
            return 400, error("bad_input", "the batch is empty", {"items": ["at least one"]})
        errors = {}
        for i, item in enumerate(items):
            x = item.get("x")
            if not (isinstance(x, list) and len(x) == 2 and all(len(r) == 2 for r in x)):
                errors[f"items.{i}.x"] = ["shape"]
            if item.get("label") not in (0, 1, 2):
                errors[f"items.{i}.label"] = ["label"]
        if errors:
            return 422, error("bad_input", "invalid items; nothing was stored", errors)
        out = []
        for item in items:
            example = {"id": len(self.examples) + 1, "x": item["x"], "label": item["label"],
                       "original_label": item["label"], "external_id": item.get("external_id"),
                       "source": item.get("source"), "status": "accepted", "history": []}
            self.examples.append(example)
            if item["label"] == 2 and len(self.examples) > 1:
                example["status"] = "suspicious"
                self.queries.append({"id": len(self.queries) + 1, "example": example["id"],
                                     "counterexample": 1, "status": "open"})
            out.append({"id": example["id"], "status": example["status"]})
        return 202, {"items": out}

    def query_dict(self, q):
        def side(eid):
            e = self.examples[eid - 1]
            return {"id": e["id"], "external_id": e["external_id"], "x": e["x"],
                    "label": e["label"], "prediction": 0, "probabilities": [1, 0, 0]}
        return {"id": q["id"], "status": q["status"], "example": side(q["example"]),
                "counterexample": side(q["counterexample"]), "margin": 0.9}

    def answer(self, qid, body):
        q = self.queries[qid - 1]
        if self.expire_leases and q["status"] == "leased":
            self.expire_leases -= 1
            q["status"] = "open"
            return 409, error("conflict", "the lease expired")
        if q["status"] != "leased":
            return 409, error("conflict", "no lease")
        q["status"] = "answered"
        self.examples[q["example"] - 1]["label"] = body["example_label"]
        if body.get("counterexample_label") is not None:
            self.examples[q["counterexample"] - 1]["label"] = body["counterexample_label"]
        return 200, {**self.query_dict(q), "answer": body}


def error(code, message, details=None):
    return {"error": {"code": code, "message": message, "details": details or {}}}


class Handler(BaseHTTPRequestHandler):
    service: FakeService

    def log_message(self, *args):          # keep test output quiet
        pass

    def _serve(self, method):
        url = urlparse(self.path)
        body = None
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            body = json.loads(self.rfile.read(length))
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        status, payload = self.server.service.handle(method, url.path, query, body, token)
        self.send_response(status)
        if payload is None:
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        text = payload if isinstance(payload, str) else json.dumps(payload)
        data = text.encode()
        self.send_header("Content-Type", "text/plain" if isinstance(payload, str)
                         else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PATCH(self):
        self._serve("PATCH")

    def do_DELETE(self):
        self._serve("DELETE")


def start_fake_service():
    """(server, service, url); call ``server.shutdown()`` when done."""
    service = FakeService()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.service = service
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return server, service, f"http://127.0.0.1:{server.server_address[1]}"

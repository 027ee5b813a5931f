"""A tiny in-memory stand-in for the labeling service's HTTP API, on 127.0.0.1, for the
client and CLI unit tests. It speaks the same routes and error shape; its "screening" is a
rule: an example ingested with label 2 gets a query whose counter-example is example 1."""
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
        parts = path.removeprefix("/api/v1/").split("/")
        if parts[0] != "projects" or len(parts) < 2:
            return 404, error("not_found", f"no route {path}")
        if parts[1] != "1":
            return 404, error("not_found", f"project {parts[1]} does not exist",
                              {"project_id": int(parts[1])})
        rest = parts[2:]
        with self.lock:
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


def start_fake_service():
    """(server, service, url); call ``server.shutdown()`` when done."""
    service = FakeService()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.service = service
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return server, service, f"http://127.0.0.1:{server.server_address[1]}"

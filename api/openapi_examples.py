"""Request and response examples in the OpenAPI document, kept out of the route modules.

``OperationExamples`` is an apispec plugin: when flask-smorest adds an operation to the
spec, the plugin puts an ``example`` next to the generated schema of the operations listed
in ``EXAMPLES`` (keyed by OpenAPI path and method), so Swagger UI shows a filled-in body.
"""
from __future__ import annotations

from apispec import BasePlugin

from .config import API_PREFIX

_SIDE = {"id": 231, "external_id": "scan-0231", "x": [0.12, 1.5, -0.3, 2.0], "label": 1,
         "prediction": 0, "probabilities": [0.91, 0.09]}
_COUNTER = {"id": 17, "external_id": "scan-0017", "x": [0.1, 1.4, -0.2, 2.2], "label": 0,
            "prediction": 0, "probabilities": [0.97, 0.03]}
_QUERY = {"id": 12, "status": "leased", "origin": "stream", "example": _SIDE,
          "counterexample": _COUNTER, "margin": 0.82, "strategy": "top_fisher",
          "model_version": 3, "note": None, "lease_expires_at": "2025-01-01T12:05:00+00:00",
          "answer": None, "created_at": "2025-01-01T11:58:02+00:00"}
_ANSWERED = {**_QUERY, "status": "answered", "lease_expires_at": None,
             "example": {**_SIDE, "label": 0}, "answer": {
                 "example_label": 0, "counterexample_label": 0, "annotator": "alice",
                 "answered_at": "2025-01-01T12:01:13+00:00"}}

# (path, method) -> {"request": example body, status: example response body}
EXAMPLES: dict[tuple[str, str], dict] = {
    (f"{API_PREFIX}/projects/{{pid}}/examples", "post"): {
        "request": {"items": [
            {"external_id": "scan-0231", "x": [0.12, 1.5, -0.3, 2.0], "label": 1,
             "source": "crowd-batch-7"},
            {"external_id": "scan-0232", "x": [0.4, 0.9, 0.0, 1.1], "label": 0,
             "source": "crowd-batch-7"}]},
        "202": {"items": [{"id": 231, "status": "pending"}, {"id": 232, "status": "pending"}]},
    },
    (f"{API_PREFIX}/projects/{{pid}}/queries/next", "post"): {"200": _QUERY},
    (f"{API_PREFIX}/projects/{{pid}}/queries/{{qid}}/answer", "post"): {
        "request": {"example_label": 0, "counterexample_label": 0},
        "200": _ANSWERED,
        "409": {"error": {"code": "conflict", "message": "you do not hold a lease on this "
                          "query (it expired, was taken by another annotator, or was never "
                          "leased)", "details": {"query_id": 12, "status": "open"}}},
    },
}


class OperationExamples(BasePlugin):
    """Adds the ``EXAMPLES`` bodies to the operations flask-smorest documents."""

    def __init__(self, examples: dict | None = None):
        self.examples = EXAMPLES if examples is None else examples

    def operation_helper(self, path=None, operations=None, **kwargs):
        for method, operation in (operations or {}).items():
            wanted = self.examples.get((path, method))
            if not wanted:
                continue
            if "request" in wanted:
                content = operation.setdefault("requestBody", {}).setdefault("content", {})
                content.setdefault("application/json", {})["example"] = wanted["request"]
            for status, body in wanted.items():
                response = operation.get("responses", {}).get(status)
                if status == "request" or not isinstance(response, dict):
                    continue
                content = response.setdefault("content", {})
                content.setdefault("application/json", {})["example"] = body

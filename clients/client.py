"""``CincerClient``: the labeling service's REST API from Python, over HTTP only.

    client = CincerClient("http://127.0.0.1:8000", token)
    pid = client.create_project({"name": "digits", "classes": [...], "input_shape": [64]})["id"]
    client.ingest(pid, items)                      # split into batches of 500
    client.ingest(pid, [correction], wait=1.0)     # with each item's verdict (assistants)
    while (query := client.next_query(pid)) is not None:
        client.answer_query(pid, query["id"], example_label=3, counterexample_label=5)

Every non-2xx answer is raised as ``ApiError(status, code, message, details)``, parsed from
the service's ``{"error": {"code", "message", "details"}}`` body.
"""
from __future__ import annotations

import time
import uuid
from typing import Callable, Iterable, Iterator

import requests

API_PREFIX = "/api/v1"
DEFAULT_BATCH_SIZE = 500
IDEMPOTENCY_HEADER = "Idempotency-Key"     # a POST with one is applied once, so retried
WAIT_BATCH_SIZE = 100            # the most items a batch may hold when it waits for verdicts
IDLE_EXAMPLE_STATUSES = ("pending",)           # examples still waiting for screening
BUSY_QUERY_STATUSES = ("computing",)           # queries still waiting for a counter-example


class ApiError(Exception):
    """A non-2xx answer from the service (or an unreadable one)."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}

    @classmethod
    def from_response(cls, response: requests.Response) -> "ApiError":
        """Parse the service's error shape; fall back to the status line and body text."""
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            details = error.get("details")
            return cls(response.status_code, str(error.get("code") or "error"),
                       str(error.get("message") or response.reason or ""),
                       details if isinstance(details, dict) else {"details": details}
                       if details is not None else {})
        text = (response.text or "").strip()
        return cls(response.status_code, f"http_{response.status_code}",
                   text[:500] or str(response.reason or "no body"), {})


class IngestError(ApiError):
    """A batch of an ``ingest`` call was refused; the batches before it were stored.

    ``stored`` holds the ``{id, status}`` results of the stored batches and ``offset`` the
    index (in the caller's item list) of the refused batch's first item."""

    def __init__(self, cause: ApiError, stored: list[dict], offset: int):
        super().__init__(cause.status, cause.code,
                         f"{cause.message} (batch starting at item {offset}; "
                         f"{len(stored)} items before it were stored)", cause.details)
        self.stored = stored
        self.offset = offset


class CincerClient:
    """A thin client for every endpoint of the labeling service's REST API.

    Parameters
    ----------
    base_url : the server root (``http://host:port``); a trailing ``/api/v1`` is accepted.
    token : the bearer token (admin, or a project token with the needed role).
    timeout : seconds per request.
    retries : how many times a GET is retried after a connection error or timeout.
    session : a ``requests.Session`` (or anything with its ``request`` method).
    """

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30,
                 retries: int = 3, backoff: float = 0.3, session=None):
        root = base_url.rstrip("/")
        if root.endswith(API_PREFIX):
            root = root[: -len(API_PREFIX)]
        self.root = root
        self.api = root + API_PREFIX
        self.token = token
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.session = session if session is not None else requests.Session()

    # -- plumbing ----------------------------------------------------------------------------
    def _headers(self) -> dict:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def request(self, method: str, path: str, *, params: dict | None = None, json=None,
                absolute: bool = False, headers: dict | None = None,
                timeout: float | None = None) -> requests.Response:
        """Send one request (``headers`` added to the usual ones, ``timeout`` instead of the
        client's); raise ``ApiError`` on a non-2xx answer.

        GETs are retried ``retries`` times on connection errors and timeouts (they change
        nothing, so a retry is safe), and so are requests with an ``Idempotency-Key``
        header (the server applies them once and answers a retry with the stored
        response); other methods are sent once."""
        url = (self.root if absolute else self.api) + path
        params = {k: v for k, v in (params or {}).items() if v is not None}
        safe = method.upper() == "GET" or IDEMPOTENCY_HEADER in (headers or {})
        attempts = 1 + (self.retries if safe else 0)
        for attempt in range(attempts):
            try:
                response = self.session.request(
                    method, url, params=params or None, json=json,
                    headers={**self._headers(), **(headers or {})},
                    timeout=self.timeout if timeout is None else timeout)
                break
            except (requests.ConnectionError, requests.Timeout):
                if attempt == attempts - 1:
                    raise
                time.sleep(self.backoff * 2 ** attempt)
        if not 200 <= response.status_code < 300:
            raise ApiError.from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs):
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # -- service -----------------------------------------------------------------------------
    def healthz(self) -> dict:
        """``GET /healthz``: liveness and which database / broker the service uses."""
        return self._json("GET", "/healthz", absolute=True)

    def metrics(self) -> str:
        """``GET /metrics``: Prometheus text format."""
        return self.request("GET", "/metrics", absolute=True).text

    def openapi(self) -> dict:
        """``GET /api/v1/openapi.json``."""
        return self._json("GET", "/openapi.json")

    def list_workers(self) -> list[dict]:
        """``GET /workers`` (admin): the workers that run background jobs, their queues,
        device and last heartbeat."""
        body = self._json("GET", "/workers")
        return body["items"] if isinstance(body, dict) and "items" in body else body

    # -- projects and tokens -------------------------------------------------------------------
    def list_projects(self) -> list[dict]:
        """``GET /projects``: the projects this token may see."""
        body = self._json("GET", "/projects")
        return body["items"] if isinstance(body, dict) and "items" in body else body

    def create_project(self, spec: dict) -> dict:
        """``POST /projects`` (admin): ``{name, classes, input_shape}`` and, optionally,
        ``model, threshold, strategy, damping, bootstrap_size, retrain``; the service fills
        in its defaults for what is left out. Returns the project with every setting."""
        return self._json("POST", "/projects", json=spec)

    def get_project(self, pid: int) -> dict:
        """``GET /projects/{pid}``: classes, input shape, settings, model version."""
        return self._json("GET", f"/projects/{int(pid)}")

    def update_project(self, pid: int, changes: dict) -> dict:
        """``PATCH /projects/{pid}`` (admin): change any of ``threshold, strategy, damping,
        bootstrap_size, retrain`` (``{mode?, every_n_answers?}``); returns the project.
        Each change goes into the project's history."""
        return self._json("PATCH", f"/projects/{int(pid)}", json=changes)

    def delete_project(self, pid: int) -> None:
        """``DELETE /projects/{pid}`` (global admin token): the project and all its data."""
        self._json("DELETE", f"/projects/{int(pid)}")

    def project_history(self, pid: int) -> list[dict]:
        """``GET /projects/{pid}/history``: settings changes ``{actor, changes, at}``,
        oldest first."""
        return self._json("GET", f"/projects/{int(pid)}/history")["items"]

    def list_tokens(self, pid: int) -> list[dict]:
        """``GET /projects/{pid}/tokens`` (admin): id, role, name, created_at, revoked."""
        return self._json("GET", f"/projects/{int(pid)}/tokens")["items"]

    def revoke_token(self, pid: int, tid: int) -> None:
        """``DELETE /projects/{pid}/tokens/{tid}`` (admin): the token stops working at once."""
        self._json("DELETE", f"/projects/{int(pid)}/tokens/{int(tid)}")

    def create_token(self, pid: int, role: str, name: str | None = None) -> dict:
        """``POST /projects/{pid}/tokens`` (admin); the secret is in ``["token"]``, once."""
        body = {"role": role}
        if name is not None:
            body["name"] = name
        return self._json("POST", f"/projects/{int(pid)}/tokens", json=body)

    # -- examples ------------------------------------------------------------------------------
    def ingest_batch(self, pid: int, items: list[dict], wait: float | None = None) -> list[dict]:
        """One ``POST /projects/{pid}/examples``: all items stored, or none. With ``wait``
        (seconds, at most 10; at most ``WAIT_BATCH_SIZE`` items) the answer waits that long
        at most for each item's verdict (``Prefer: wait``)."""
        headers, timeout = None, None
        if wait is not None:
            headers = {"Prefer": f"wait={float(wait):g}"}
            timeout = max(self.timeout, float(wait) + 10)
        body = self._json("POST", f"/projects/{int(pid)}/examples",
                          json={"items": [_jsonable_item(item) for item in items]},
                          headers=headers, timeout=timeout)
        return body["items"]

    def ingest(self, pid: int, items: Iterable[dict], batch_size: int = DEFAULT_BATCH_SIZE,
               progress: Callable[[int], None] | None = None,
               wait: float | None = None) -> list[dict]:
        """Send ``items`` (``{x, label, external_id?, source?}``) in batches of
        ``batch_size``; returns every ``{id, status, outcome}`` in order.

        With ``wait`` (seconds, 0 < wait <= 10) each batch (at most ``WAIT_BATCH_SIZE``
        items) waits at most that long for its verdicts: every result also has ``verdict``
        (``accepted``, ``suspicious``, ``unscreened`` with ``reason``, or ``pending``),
        ``margin``, ``prediction``, ``prediction_name``, ``probabilities`` and, when
        suspicious, ``query`` (``id``, ``counterexample``; leased to this token when it may
        answer: answer it with ``answer_query``). See ``docs/assistant.md``.

        Each batch is all-or-nothing on the server; when one is refused an ``IngestError``
        says which and carries the results of the batches already stored."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if wait is not None:
            batch_size = min(batch_size, WAIT_BATCH_SIZE)
        items = list(items)
        results: list[dict] = []
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            try:
                results.extend(self.ingest_batch(pid, batch, wait=wait))
            except ApiError as exc:
                raise IngestError(exc, results, start) from exc
            if progress is not None:
                progress(len(batch))
        return results

    def list_examples(self, pid: int, status: str | None = None, source: str | None = None,
                      offset: int = 0, limit: int = 50) -> dict:
        """One page: ``{items, total}``."""
        return self._json("GET", f"/projects/{int(pid)}/examples",
                          params={"status": status, "source": source, "offset": offset,
                                  "limit": limit})

    def iter_examples(self, pid: int, status: str | None = None, source: str | None = None,
                      page_size: int = 500) -> Iterator[dict]:
        """Every example, page after page."""
        offset = 0
        while True:
            page = self.list_examples(pid, status, source, offset, page_size)
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return

    def get_example(self, pid: int, eid: int) -> dict:
        """One example with its label ``history``."""
        return self._json("GET", f"/projects/{int(pid)}/examples/{int(eid)}")

    # -- queries -------------------------------------------------------------------------------
    def next_query(self, pid: int) -> dict | None:
        """``POST /projects/{pid}/queries/next`` (annotator): a leased query, or ``None``
        when none is open (204)."""
        return self._json("POST", f"/projects/{int(pid)}/queries/next")

    def get_query(self, pid: int, qid: int) -> dict:
        """One query, whatever its status."""
        return self._json("GET", f"/projects/{int(pid)}/queries/{int(qid)}")

    def list_queries(self, pid: int, status: str | None = None, offset: int = 0,
                     limit: int = 50) -> dict:
        """``GET /projects/{pid}/queries``: one page ``{items, total}``, optionally by
        status (computing, open, leased, answered)."""
        return self._json("GET", f"/projects/{int(pid)}/queries",
                          params={"status": status, "offset": offset, "limit": limit})

    def answer_query(self, pid: int, qid: int, example_label: int | str,
                     counterexample_label: int | str | None = None,
                     counterexample_not_sure: bool = False,
                     idempotency_key: str | None = None) -> dict:
        """``POST /projects/{pid}/queries/{qid}/answer``; labels are class indices or
        names. The request carries an ``Idempotency-Key`` (``idempotency_key``, else a new
        one), so it is retried like a GET after a connection error or timeout: the server
        applies it once. A lost lease, or a second answer to a query you answered (another
        call), is a 409 ``ApiError`` (``details["already_answered"]`` for the latter)."""
        body = _answer_body(example_label, counterexample_label, counterexample_not_sure)
        key = idempotency_key or f"answer-{uuid.uuid4()}"
        return self._json("POST", f"/projects/{int(pid)}/queries/{int(qid)}/answer",
                          json=body, headers={IDEMPOTENCY_HEADER: key})

    def release_query(self, pid: int, qid: int) -> dict:
        """``POST /projects/{pid}/queries/{qid}/release`` (annotator): skip a leased query."""
        return self._json("POST", f"/projects/{int(pid)}/queries/{int(qid)}/release")

    def correct_answer(self, pid: int, qid: int, example_label: int | str,
                       counterexample_label: int | str | None = None, reason: str = "",
                       counterexample_not_sure: bool = False) -> dict:
        """``POST /projects/{pid}/queries/{qid}/correct`` (annotator): correct your answer;
        ``reason`` goes into the label history."""
        body = _answer_body(example_label, counterexample_label, counterexample_not_sure)
        body["reason"] = reason
        return self._json("POST", f"/projects/{int(pid)}/queries/{int(qid)}/correct",
                          json=body)

    # -- models, stats, export -----------------------------------------------------------------
    def list_models(self, pid: int) -> list[dict]:
        """``GET /projects/{pid}/models``: the project's model versions."""
        body = self._json("GET", f"/projects/{int(pid)}/models")
        return body["items"] if isinstance(body, dict) and "items" in body else body

    def retrain(self, pid: int) -> dict:
        """``POST /projects/{pid}/models/retrain`` (admin): queue a retrain."""
        return self._json("POST", f"/projects/{int(pid)}/models/retrain")

    def stats(self, pid: int) -> dict:
        """``GET /projects/{pid}/stats``: counts per status, pending work, model version."""
        return self._json("GET", f"/projects/{int(pid)}/stats")

    def export(self, pid: int, format: str = "csv") -> str:
        """Every example (labels with class names, input, status, last change; JSON lines
        add the label history), as CSV or JSON-lines text."""
        return self.request("GET", f"/projects/{int(pid)}/export",
                            params={"format": format}).text

    def import_examples(self, pid: int, records: Iterable[dict],
                        batch_size: int = DEFAULT_BATCH_SIZE,
                        progress: Callable[[int], None] | None = None) -> dict:
        """``POST /projects/{pid}/import`` (admin) in batches: an export's records (the
        JSON lines of ``export(format="jsonl")``, or ``clients.readers.read_export``) into a
        new project. Returns ``{imported, events, statuses, items}`` over every batch; a
        refused batch raises an ``IngestError`` (the batches before it were stored)."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        records = list(records)
        total = {"imported": 0, "events": 0, "statuses": {}, "items": []}
        for start in range(0, len(records), batch_size):
            batch = records[start:start + batch_size]
            try:
                done = self._json("POST", f"/projects/{int(pid)}/import",
                                  json={"items": batch})
            except ApiError as exc:
                raise IngestError(exc, total["items"], start) from exc
            total["imported"] += done["imported"]
            total["events"] += done["events"]
            for status, n in done["statuses"].items():
                total["statuses"][status] = total["statuses"].get(status, 0) + n
            total["items"].extend(done["items"])
            if progress is not None:
                progress(len(batch))
        return total

    # -- audits --------------------------------------------------------------------------------
    def create_audit(self, pid: int, detectors: list[str], top_k: int = 20) -> dict:
        """``POST /projects/{pid}/audits`` (admin): score the training set offline."""
        return self._json("POST", f"/projects/{int(pid)}/audits",
                          json={"detectors": list(detectors), "top_k": int(top_k)})

    def list_audits(self, pid: int, offset: int = 0, limit: int = 50) -> dict:
        """``GET /projects/{pid}/audits``: one page ``{items, total}``, newest first."""
        return self._json("GET", f"/projects/{int(pid)}/audits",
                          params={"offset": offset, "limit": limit})

    def get_audit(self, pid: int, aid: int) -> dict:
        """``GET /projects/{pid}/audits/{aid}``: the audit, with its results once done."""
        return self._json("GET", f"/projects/{int(pid)}/audits/{int(aid)}")

    def enqueue_audit(self, pid: int, aid: int, top_k: int | None = None) -> dict:
        """``POST /projects/{pid}/audits/{aid}/enqueue`` (admin): the audit's top suspects
        become review queries."""
        body = {} if top_k is None else {"top_k": int(top_k)}
        return self._json("POST", f"/projects/{int(pid)}/audits/{int(aid)}/enqueue", json=body)

    # -- crowds ---------------------------------------------------------------------------------
    def list_annotators(self, pid: int) -> dict:
        """``GET /projects/{pid}/annotators``: each annotator's answers, agreement, gold
        accuracy, confusion, median seconds and flag; the crowd's Krippendorff's alpha."""
        return self._json("GET", f"/projects/{int(pid)}/annotators")

    def suspend_annotator(self, pid: int, aid: int) -> dict:
        """``POST /projects/{pid}/annotators/{aid}/suspend`` (admin)."""
        return self._json("POST", f"/projects/{int(pid)}/annotators/{int(aid)}/suspend")

    def restore_annotator(self, pid: int, aid: int) -> dict:
        """``POST /projects/{pid}/annotators/{aid}/restore`` (admin)."""
        return self._json("POST", f"/projects/{int(pid)}/annotators/{int(aid)}/restore")

    def list_gold(self, pid: int) -> dict:
        """``GET /projects/{pid}/gold``: the gold examples and their trusted labels."""
        return self._json("GET", f"/projects/{int(pid)}/gold")

    def mark_gold(self, pid: int, example_ids: list[int], gold: bool = True) -> dict:
        """``POST /projects/{pid}/gold`` (admin): mark (or unmark) examples as gold."""
        return self._json("POST", f"/projects/{int(pid)}/gold",
                          json={"example_ids": [int(i) for i in example_ids],
                                "gold": bool(gold)})

    def list_sources(self, pid: int) -> dict:
        """``GET /projects/{pid}/sources``: noise rate per source and relabel proposals."""
        return self._json("GET", f"/projects/{int(pid)}/sources")

    def apply_source_proposal(self, pid: int, source: str | None, from_label: int | str,
                              to_label: int | str) -> dict:
        """``POST /projects/{pid}/sources/relabel`` (admin): apply one proposal."""
        return self._json("POST", f"/projects/{int(pid)}/sources/relabel",
                          json={"source": source, "from_label": _label(from_label),
                                "to_label": _label(to_label)})

    # -- overview ------------------------------------------------------------------------------
    def get_overview(self, pid: int) -> dict:
        """``GET /projects/{pid}/overview``: the stored overview and its ``status``."""
        return self._json("GET", f"/projects/{int(pid)}/overview")

    def request_overview(self, pid: int) -> dict:
        """``POST /projects/{pid}/overview`` (admin): (re)compute it in the background."""
        return self._json("POST", f"/projects/{int(pid)}/overview")

    def overview_cell(self, pid: int, label: int, prediction: int, min_score: float = 0.0,
                      max_score: float = 1.0) -> dict:
        """``GET /projects/{pid}/overview/cells/{label}/{prediction}``: the cell's examples
        with a mismatch score in ``[min_score, max_score]``."""
        return self._json("GET", f"/projects/{int(pid)}/overview/cells/{int(label)}/"
                                 f"{int(prediction)}",
                          params={"min_score": min_score, "max_score": max_score})

    def overview_action(self, pid: int, action: str, example_ids: list[int],
                        label: int | str | None = None, reason: str | None = None) -> dict:
        """``POST /projects/{pid}/overview/actions`` (admin): relabel, confirm or remove;
        ``label`` is a class name (a string) or index (an integer)."""
        body = {"action": action, "example_ids": [int(i) for i in example_ids]}
        if label is not None:
            body["label"] = _label(label)
        if reason is not None:
            body["reason"] = reason
        return self._json("POST", f"/projects/{int(pid)}/overview/actions", json=body)

    def overview_progress(self, pid: int) -> list[dict]:
        """``GET /projects/{pid}/overview/progress``: answers and changes per version."""
        return self._json("GET", f"/projects/{int(pid)}/overview/progress")["items"]

    def overview_progress_png(self, pid: int) -> bytes:
        """``GET /projects/{pid}/overview/progress.png``: the progress plot."""
        return self.request("GET", f"/projects/{int(pid)}/overview/progress.png").content

    def cleaning_curve(self, pid: int) -> dict:
        """The cleaning curve from ``GET /projects/{pid}/stats``: ``{"evaluation": the newest
        version's scores on the evaluation set (or None), "points": [{version, answers,
        train_size, created_at, status, n, accuracy, f1_macro, log_loss, ece}]}``."""
        stats = self.stats(pid)
        return {"evaluation": stats.get("evaluation"),
                "points": stats.get("cleaning_curve", [])}

    def cleaning_curve_png(self, pid: int) -> bytes:
        """``GET /projects/{pid}/overview/curve.png``: the cleaning-curve plot."""
        return self.request("GET", f"/projects/{int(pid)}/overview/curve.png").content

    # -- webhooks ------------------------------------------------------------------------------
    def create_webhook(self, pid: int, url: str, events: list[str] | None = None) -> dict:
        """``POST /projects/{pid}/webhooks`` (admin); the signing secret is shown once."""
        body = {"url": url}
        if events is not None:
            body["events"] = list(events)
        return self._json("POST", f"/projects/{int(pid)}/webhooks", json=body)

    def list_webhooks(self, pid: int) -> list[dict]:
        """``GET /projects/{pid}/webhooks`` (admin): the active endpoints."""
        return self._json("GET", f"/projects/{int(pid)}/webhooks")["items"]

    def delete_webhook(self, pid: int, wid: int) -> None:
        """``DELETE /projects/{pid}/webhooks/{wid}`` (admin): deactivate an endpoint."""
        self._json("DELETE", f"/projects/{int(pid)}/webhooks/{int(wid)}")

    def list_deliveries(self, pid: int, wid: int, offset: int = 0, limit: int = 50) -> dict:
        """``GET /projects/{pid}/webhooks/{wid}/deliveries`` (admin): one page, newest
        first."""
        return self._json("GET", f"/projects/{int(pid)}/webhooks/{int(wid)}/deliveries",
                          params={"offset": offset, "limit": limit})

    # -- waiting -------------------------------------------------------------------------------
    @staticmethod
    def is_idle(stats: dict) -> bool:
        """No example waits for screening, no query for its counter-example, no retrain."""
        return (not any(stats.get("examples", {}).get(s, 0) for s in IDLE_EXAMPLE_STATUSES)
                and not any(stats.get("queries", {}).get(s, 0) for s in BUSY_QUERY_STATUSES)
                and not stats.get("retrain_wanted", False))

    def wait_idle(self, pid: int, timeout: float = 120, poll: float = 0.5) -> dict:
        """Poll ``stats`` until the project's background work is done; returns the stats.

        Raises ``TimeoutError`` (with the last stats) after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats(pid)
            if self.is_idle(stats):
                return stats
            if time.monotonic() >= deadline:
                raise TimeoutError(f"project {pid} still busy after {timeout:g} s: {stats}")
            time.sleep(poll)


def _label(value):
    """A class name stays a string; an index (numpy integers too) becomes an int."""
    return value if isinstance(value, str) else int(value)


def _answer_body(example_label, counterexample_label, not_sure: bool) -> dict:
    body = {"example_label": _label(example_label)}
    if counterexample_label is not None:
        body["counterexample_label"] = _label(counterexample_label)
    if not_sure:
        body["counterexample_not_sure"] = True
    return body


def _jsonable_item(item: dict) -> dict:
    """``x`` as nested lists and ``label`` as an int, whatever array types came in."""
    out = dict(item)
    x = out.get("x")
    if hasattr(x, "tolist"):
        out["x"] = x.tolist()
    label = out.get("label")
    if label is not None and hasattr(label, "item"):
        out["label"] = label.item()
    return out

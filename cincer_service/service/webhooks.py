"""Webhooks: a project's signed event notifications (the Standard Webhooks scheme).

This module owns the webhook endpoints of a project (each with its own ``whsec_`` secret),
the outbox of deliveries and the ``deliver_webhooks`` job.

* ``emit(s, pid, event, data)`` is called by a use case *inside* the transaction that
  causes the event: it inserts one pending ``WebhookDelivery`` per active endpoint
  subscribed to ``event``, so the event is committed (or rolled back) with the change and a
  slow or failing receiver never blocks or loses it. It records its own delivery as a
  follow-up (``jobs.DELIVER_WEBHOOKS``), sent once the transaction commits.
* ``deliver_webhooks`` (a job) claims each due delivery with a compare-and-set UPDATE (the
  attempt counter is the fence, the next attempt time a short lease), POSTs the JSON body
  with the ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers, and on
  anything but 2xx retries with exponential backoff (``BACKOFF_SECONDS``) until
  ``MAX_ATTEMPTS``, when the delivery is ``failed``. the reconciler re-submits the job
  for projects with due deliveries (``due_projects``).
* ``sign`` and ``verify`` are the scheme itself; ``verify`` is what a receiver does.

Every payload is ``{"type": event, "timestamp": iso, "data": {"project_id", ...}}``; the
events are ``EVENTS``, the fields of ``data`` are chosen where each is emitted.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import numpy as np
import requests
from sqlalchemy import func, select, update

from . import jobs
from .context import ServiceContext, project_child, project_row
from .errors import BadInput
from .store import WebhookDelivery, WebhookEndpoint, utcnow

log = logging.getLogger(__name__)

EVENTS = (
    "example.suspicious",   # screening found an example suspicious (a query is computing)
    "example.screened",     # screening's verdict on any example: accepted or suspicious
    "query.opened",         # a query's counter-example was found; annotators can lease it
    "query.answered",       # an annotator answered a query
    "label.changed",        # any label change: answers, corrections, ingest updates
    "model.created",        # a new model version was trained
    "audit.finished",       # an audit is done (or failed)
)
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
MAX_URL_LENGTH = 2000

# A failed attempt waits 5 s, 30 s, 2 min, 10 min, 30 min, then 1 h between attempts; after
# MAX_ATTEMPTS attempts the delivery is given up (``failed``). Tests shorten these.
BACKOFF_SECONDS: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0)
MAX_ATTEMPTS = 10
TIMEOUT_SECONDS = 5.0               # one POST to a receiver
CLAIM_SECONDS = 60.0                # lease of a claimed delivery while it is being sent
TOLERANCE_SECONDS = 300             # how old (or new) a timestamp ``verify`` accepts
BATCH = 50                          # deliveries read per round of ``deliver_webhooks``


class InvalidSignature(ValueError):
    """A webhook request whose headers, timestamp or signature do not verify."""


# -- endpoints -----------------------------------------------------------------------------
def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def endpoint_view(e: WebhookEndpoint, with_secret: bool = False) -> dict:
    """The endpoint as the API shows it; the secret only when ``with_secret``."""
    view = {"id": e.id, "project_id": e.project_id, "url": e.url, "events": list(e.events),
            "active": e.active, "created_at": e.created_at}
    if with_secret:
        view["secret"] = e.secret
    return view


def delivery_view(d: WebhookDelivery) -> dict:
    """One entry of the delivery log."""
    return {"id": d.id, "endpoint_id": d.endpoint_id, "message_id": d.message_id,
            "event": d.event, "payload": d.payload, "status": d.status,
            "attempts": d.attempts, "next_attempt_at": d.next_attempt_at,
            "last_error": d.last_error, "response_status": d.response_status,
            "created_at": d.created_at, "delivered_at": d.delivered_at}


def check_url(url) -> str:
    """``url`` when it is an absolute http(s) URL of at most 2000 characters; ``BadInput``
    otherwise."""
    problem = None
    if not isinstance(url, str) or not url.strip():
        problem = "an absolute http(s) URL"
    elif len(url) > MAX_URL_LENGTH:
        problem = f"at most {MAX_URL_LENGTH} characters"
    else:
        url = url.strip()
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            ok = ok and (parts.port is None or parts.port > 0)   # raises on a bad port
        except ValueError:
            ok = False
        if not ok or any(ch.isspace() or ord(ch) < 32 for ch in url):
            problem = "an absolute http(s) URL"
    if problem:
        raise BadInput("invalid webhook URL", {"url": [problem]})
    return url


def check_events(events) -> list[str]:
    """The subscribed events, deduplicated in ``EVENTS`` order (``None``: all of them);
    ``BadInput`` for an empty list or an unknown name."""
    if events is None:
        return list(EVENTS)
    unknown = [e for e in events if e not in EVENTS]
    if not events or unknown:
        raise BadInput("unknown or missing events",
                       {"events": [f"choose from {', '.join(EVENTS)}"], "unknown": unknown})
    return [e for e in EVENTS if e in set(events)]


def create_endpoint(ctx: ServiceContext, pid: int, url: str,
                    events: list[str] | None = None) -> dict:
    """Register a receiver for the project's ``events`` (default: all); the answer holds
    the signing secret, which is never shown again."""
    url, events = check_url(url), check_events(events)
    with ctx.store.session() as s:
        project_row(s, pid)
        endpoint = WebhookEndpoint(project_id=pid, url=url, secret=new_secret(),
                                   events=events, active=True, created_at=utcnow())
        s.add(endpoint)
        s.flush()
        return endpoint_view(endpoint, with_secret=True)


def list_endpoints(ctx: ServiceContext, pid: int) -> list[dict]:
    """The project's active endpoints, oldest first, without their secrets."""
    with ctx.store.session() as s:
        project_row(s, pid)
        return [endpoint_view(e) for e in s.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.project_id == pid,
                                          WebhookEndpoint.active.is_(True))
            .order_by(WebhookEndpoint.id))]


def delete_endpoint(ctx: ServiceContext, pid: int, wid: int) -> None:
    """Deactivate an endpoint: it gets no new events and its pending deliveries are given
    up; its delivery log stays readable. Deleting it again is a no-op."""
    now = utcnow()
    with ctx.store.session() as s:
        endpoint = project_child(s, WebhookEndpoint, pid, wid, "webhook")
        endpoint.active = False
        s.execute(update(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == wid, WebhookDelivery.status == "pending")
            .values(status="failed", last_error="endpoint deactivated", next_attempt_at=now)
            .execution_options(synchronize_session=False))


def list_deliveries(ctx: ServiceContext, pid: int, wid: int, offset: int = 0,
                    limit: int = 50) -> dict:
    """One page ``{items, total}`` of an endpoint's delivery log, newest first."""
    with ctx.store.session() as s:
        project_child(s, WebhookEndpoint, pid, wid, "webhook")
        where = WebhookDelivery.endpoint_id == wid
        total = s.scalar(select(func.count(WebhookDelivery.id)).where(where))
        rows = s.scalars(select(WebhookDelivery).where(where)
                         .order_by(WebhookDelivery.id.desc()).offset(offset).limit(limit))
        return {"items": [delivery_view(d) for d in rows], "total": total}


# -- emission (the outbox) -----------------------------------------------------------------
# In-process listeners: ``on(event, fn)`` makes ``emit`` call ``fn(s, pid, data)`` in the
# caller's transaction, endpoints or not (``label_studio`` follows query events with its sync).
LISTENERS: dict[str, list] = {}


def on(event: str, listener) -> None:
    """Call ``listener(s, pid, data)`` whenever ``event`` is emitted (in its transaction)."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    LISTENERS.setdefault(event, []).append(listener)


def emit(s, pid: int, event: str, data: dict) -> bool:
    """Queue ``event`` for every active endpoint of project ``pid`` subscribed to it, in
    the caller's open session ``s`` (so it commits or rolls back with the change).

    The payload is ``{"type": event, "timestamp": iso, "data": {"project_id": pid,
    **data}}``; every endpoint gets the same message id. The project's endpoints are read
    once per session (one indexed query; nothing else when there are none). Returns whether
    anything was queued; then ``deliver_webhooks`` follows the commit."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    for listener in LISTENERS.get(event, ()):
        listener(s, pid, data)
    cache = s.info.setdefault("webhook_endpoints", {})
    if pid not in cache:
        cache[pid] = s.execute(select(WebhookEndpoint.id, WebhookEndpoint.events).where(
            WebhookEndpoint.project_id == pid, WebhookEndpoint.active.is_(True))).all()
    targets = [wid for wid, events in cache[pid] if event in events]
    if not targets:
        return False
    now = utcnow()
    payload = {"type": event, "timestamp": now.isoformat(),
               "data": _jsonable({"project_id": pid, **data})}
    message_id = "msg_" + uuid.uuid4().hex
    s.add_all([WebhookDelivery(endpoint_id=wid, message_id=message_id, event=event,
                               payload=payload, status="pending", attempts=0,
                               next_attempt_at=now, created_at=now) for wid in targets])
    jobs.follow(s, jobs.DELIVER_WEBHOOKS(pid))
    return True


def _jsonable(value):
    """``value`` with datetimes as ISO strings and NumPy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- delivery (the job) --------------------------------------------------------------------
def backoff_seconds(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (capped)."""
    return BACKOFF_SECONDS[min(max(attempts, 1), len(BACKOFF_SECONDS)) - 1]


def due_projects(s, now: datetime | None = None) -> list[int]:
    """Projects with pending deliveries due at ``now`` (what the reconciler re-submits)."""
    return s.scalars(select(WebhookEndpoint.project_id).join(
        WebhookDelivery, WebhookDelivery.endpoint_id == WebhookEndpoint.id).where(
        WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= (now or utcnow()),
        WebhookEndpoint.active.is_(True)).distinct().order_by(WebhookEndpoint.project_id)).all()


def deliver_webhooks(ctx: ServiceContext, pid: int, now: datetime | None = None) -> dict:
    """Send the project's due deliveries (job ``deliver_webhooks``), each at most once per
    run; returns ``{delivered, retrying, failed}`` counts. ``now`` fixes the clock (tests).

    A delivery is claimed with a compare-and-set UPDATE on its attempt counter that also
    moves ``next_attempt_at`` ``CLAIM_SECONDS`` ahead, so no two workers send it at once and
    a worker killed while sending leaves it to be retried after that lease."""
    clock = (lambda: now) if now is not None else utcnow
    counts: Counter = Counter()
    after = 0
    while True:
        with ctx.store.session() as s:
            due = s.execute(select(
                WebhookDelivery.id, WebhookDelivery.attempts, WebhookDelivery.message_id,
                WebhookDelivery.payload, WebhookEndpoint.url, WebhookEndpoint.secret)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookEndpoint.project_id == pid, WebhookEndpoint.active.is_(True),
                       WebhookDelivery.status == "pending",
                       WebhookDelivery.next_attempt_at <= clock(), WebhookDelivery.id > after)
                .order_by(WebhookDelivery.id).limit(BATCH)).all()
        for row in due:
            outcome = _deliver_one(ctx, row, clock)
            if outcome:
                counts[outcome] += 1
        if len(due) < BATCH:
            return {k: counts[k] for k in ("delivered", "retrying", "failed")}
        after = due[-1].id


def _deliver_one(ctx: ServiceContext, row, clock) -> str | None:
    """Claim, send and record one delivery; its outcome, or ``None`` when another worker
    claimed it first."""
    attempt = row.attempts + 1
    with ctx.store.session() as s:
        claimed = s.execute(update(WebhookDelivery).where(
            WebhookDelivery.id == row.id, WebhookDelivery.status == "pending",
            WebhookDelivery.attempts == row.attempts,
            WebhookDelivery.next_attempt_at <= clock())
            .values(attempts=attempt,
                    next_attempt_at=clock() + timedelta(seconds=CLAIM_SECONDS))
            .execution_options(synchronize_session=False))
        if claimed.rowcount != 1:
            return None
    status, error = send(row.url, row.secret, row.message_id, row.payload)
    now = clock()
    if status is not None and 200 <= status < 300:
        outcome = "delivered"
        values = {"status": "delivered", "delivered_at": now, "last_error": None}
    elif attempt >= MAX_ATTEMPTS:
        outcome = "failed"
        values = {"status": "failed", "last_error": error}
    else:
        outcome = "retrying"
        values = {"last_error": error,
                  "next_attempt_at": now + timedelta(seconds=backoff_seconds(attempt))}
    with ctx.store.session() as s:
        s.execute(update(WebhookDelivery).where(
            WebhookDelivery.id == row.id, WebhookDelivery.status == "pending",
            WebhookDelivery.attempts == attempt)
            .values(response_status=status, **values)
            .execution_options(synchronize_session=False))
    if outcome != "delivered":
        log.info("webhook delivery %s to %s: attempt %s %s (%s)", row.id, row.url, attempt,
                 outcome, error)
    return outcome


def send(url: str, secret: str, message_id: str, payload: dict,
         timestamp: int | None = None) -> tuple[int | None, str | None]:
    """POST one signed message; ``(response status or None, error or None)``. Never
    raises for network trouble: that is the error."""
    body = json.dumps(payload, separators=(",", ":"))
    headers = sign_headers(secret, message_id, body, timestamp)
    try:
        response = requests.post(url, data=body.encode(), headers=headers,
                                 timeout=TIMEOUT_SECONDS, allow_redirects=False)
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"[:2000]
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}: {response.text[:500]}"


# -- the scheme ----------------------------------------------------------------------------
def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignature("the secret is not whsec_ + base64") from exc


def sign(secret: str, message_id: str, timestamp: int, body: str | bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of
    ``f"{message_id}.{timestamp}.{body}"`` under the secret's decoded bytes."""
    if isinstance(body, str):
        body = body.encode()
    signed = f"{message_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_headers(secret: str, message_id: str, body: str | bytes,
                 timestamp: int | None = None) -> dict:
    """The headers of one signed message (``timestamp``: now, in unix seconds)."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, message_id, timestamp, body),
            "content-type": "application/json"}


def verify(secret: str, headers, body: str | bytes, tolerance: float = TOLERANCE_SECONDS,
           now: float | None = None) -> dict:
    """What a receiver does: check a request's ``webhook-*`` headers against ``secret``
    and return the parsed JSON payload; ``InvalidSignature`` when a header is missing, the
    timestamp is more than ``tolerance`` seconds from ``now``, or no ``v1`` signature in
    the (space-separated) header matches."""
    lowered = {str(k).lower(): v for k, v in dict(headers).items()}
    message_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (message_id and timestamp and signatures):
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(timestamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not an integer") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise InvalidSignature("webhook-timestamp is too old or too new")
    expected = sign(secret, message_id, timestamp, body).partition(",")[2]
    for candidate in signatures.split():
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected.encode()):
            return json.loads(body)
    raise InvalidSignature("no matching signature")


jobs.DELIVER_WEBHOOKS.bind(deliver_webhooks, unfinished=due_projects)

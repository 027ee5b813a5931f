"""Response bodies of the operations family."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields


class HealthSchema(ma.Schema):
    status = fields.String(metadata={"description": "ok, or degraded while the broker does "
                                                   "not answer (requests still succeed)"})
    mode = fields.String(metadata={"enum": ["embedded", "celery"]})
    database = fields.String(metadata={"description": "the database dialect that answered"})
    broker = fields.String(allow_none=True,
                           metadata={"description": "celery mode: ok, or degraded (down or hung)"})


class WorkerSchema(ma.Schema):
    name = fields.String(metadata={"description": "the worker's node name"})
    queues = fields.List(fields.String(), metadata={"description": "compute and/or background"})
    device = fields.String(metadata={"enum": ["GPU", "CPU"]})
    device_name = fields.String(allow_none=True)
    started_at = fields.DateTime()
    last_heartbeat = fields.DateTime()
    alive = fields.Boolean(metadata={"description": "a heartbeat in the last 30 s"})

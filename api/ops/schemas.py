"""Response bodies of the operations family."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields


class HealthSchema(ma.Schema):
    status = fields.String(metadata={"description": "ok"})
    mode = fields.String(metadata={"enum": ["embedded", "celery"]})
    database = fields.String(metadata={"description": "the database dialect that answered"})
    broker = fields.String(allow_none=True,
                           metadata={"description": "celery mode: ok or unreachable"})

"""Request and response bodies of the audits family."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from ..fields import StrictInteger


class AuditCreateSchema(ma.Schema):
    detectors = fields.List(fields.String(validate=validate.Length(min=1, max=100)),
                            required=True, validate=validate.Length(min=1, max=50),
                            metadata={"description": "detector names, e.g. self_influence, "
                                                     "margin, near_duplicates"})
    top_k = StrictInteger(load_default=20, validate=validate.Range(min=1, max=100_000))


class AuditEnqueueSchema(ma.Schema):
    top_k = StrictInteger(validate=validate.Range(min=1, max=100_000),
                          metadata={"description": "how many top suspects become queries "
                                                   "(default: the audit's top_k)"})


class SuspectSchema(ma.Schema):
    example_id = fields.Integer()
    label = fields.Integer()
    score = fields.Float()
    scores = fields.Dict(keys=fields.String(), values=fields.Float())


class AuditSchema(ma.Schema):
    id = fields.Integer()
    project_id = fields.Integer()
    status = fields.String(metadata={"enum": ["queued", "running", "done", "failed"]})
    progress = fields.Float()
    detectors = fields.List(fields.String())
    top_k = fields.Integer()
    suspects = fields.List(fields.Nested(SuspectSchema))
    duplicates = fields.List(fields.Dict())
    leakage = fields.List(fields.Dict())
    skipped = fields.Dict(keys=fields.String(), values=fields.String(),
                          metadata={"description": "detector -> why it did not run"})
    error = fields.String(allow_none=True)
    created_at = fields.DateTime()


class AuditEnqueuedSchema(ma.Schema):
    audit_id = fields.Integer()
    query_ids = fields.List(fields.Integer())
    enqueued = fields.Integer()


class AuditListArgsSchema(ma.Schema):
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**53))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500),
                           metadata={"description": "page size (at most 500)"})


class AuditPageSchema(ma.Schema):
    items = fields.List(fields.Nested(AuditSchema), metadata={"description": "newest first"})
    total = fields.Integer()

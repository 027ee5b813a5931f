"""Request and response bodies of the queries family."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from ..fields import StrictInteger


class QuerySideSchema(ma.Schema):
    id = fields.Integer()
    external_id = fields.String(allow_none=True)
    x = fields.Raw(metadata={"type": "array", "items": {}})
    label = fields.Integer(metadata={"description": "the current label"})
    prediction = fields.Integer(allow_none=True)
    probabilities = fields.List(fields.Float(), allow_none=True)


class AnswerSchema(ma.Schema):
    example_label = fields.Integer()
    counterexample_label = fields.Integer(allow_none=True)
    annotator = fields.String()
    answered_at = fields.DateTime()


class QuerySchema(ma.Schema):
    id = fields.Integer()
    status = fields.String(metadata={"enum": ["computing", "open", "leased", "answered"]})
    origin = fields.String(metadata={"description": "stream (screening) or audit"})
    example = fields.Nested(QuerySideSchema)
    counterexample = fields.Nested(QuerySideSchema, allow_none=True)
    margin = fields.Float(allow_none=True)
    strategy = fields.String()
    model_version = fields.Integer(allow_none=True)
    note = fields.String(allow_none=True)
    lease_expires_at = fields.DateTime(allow_none=True)
    answer = fields.Nested(AnswerSchema, allow_none=True)
    created_at = fields.DateTime()


class AnswerInSchema(ma.Schema):
    example_label = StrictInteger(required=True, validate=validate.Range(min=0),
                                  metadata={"description": "the true label of the example"})
    counterexample_label = StrictInteger(
        allow_none=True, load_default=None, validate=validate.Range(min=0),
        metadata={"description": "the true label of the counter-example (omit when the "
                                 "query has none)"})

"""Request and response bodies of the overview family."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from ..fields import MAX_ID, Label, StrictInteger, check_text


class CellSummarySchema(ma.Schema):
    label = fields.Integer(metadata={"description": "the given label (row)"})
    prediction = fields.Integer(metadata={"description": "the model's prediction (column)"})
    count = fields.Integer()
    histogram = fields.List(fields.Integer(), metadata={
        "description": "counts of mismatch scores (max_j p_j + 1 − p_label)/2 in equal bins "
                       "over [0.5, 1]"})
    duplicates = fields.Integer(metadata={"description": "near-duplicate pairs in the cell"})


class PairSchema(ma.Schema):
    first = fields.Integer()
    second = fields.Integer()
    similarity = fields.Float()
    label = fields.Integer()
    prediction = fields.Integer()


class OverviewSchema(ma.Schema):
    status = fields.String(metadata={"enum": ["missing", "computing", "done", "failed"]})
    stale = fields.Boolean(metadata={"description": "labels changed since it was computed"})
    model_version = fields.Integer(allow_none=True)
    computed_at = fields.DateTime(allow_none=True)
    requested_at = fields.DateTime(allow_none=True)
    error = fields.String(allow_none=True)
    classes = fields.List(fields.String())
    n_examples = fields.Integer()
    bins = fields.Integer()
    cells = fields.List(fields.Nested(CellSummarySchema),
                        metadata={"description": "largest first"})
    duplicates = fields.List(fields.Nested(PairSchema))
    audit = fields.Dict(allow_none=True, metadata={
        "description": "the latest finished audit: {id, detectors, suspects, duplicates}"})


class CellArgsSchema(ma.Schema):
    min_score = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=1))
    max_score = fields.Float(load_default=1.0, validate=validate.Range(min=0, max=1))


class CellItemSchema(ma.Schema):
    id = fields.Integer()
    external_id = fields.String(allow_none=True)
    score = fields.Float()
    xy = fields.List(fields.Float(), allow_none=True,
                     metadata={"description": "2-D position in [0, 1]² (t-SNE or a grid)"})
    x = fields.Raw(metadata={"type": "array", "items": {}})
    label = fields.Integer(metadata={"description": "the current label"})
    status = fields.String()
    confirmed = fields.Boolean()


class CellSchema(ma.Schema):
    label = fields.Integer()
    prediction = fields.Integer()
    count = fields.Integer()
    items = fields.List(fields.Nested(CellItemSchema),
                        metadata={"description": "by decreasing mismatch score"})


class ActionInSchema(ma.Schema):
    action = fields.String(required=True, validate=validate.OneOf(("relabel", "confirm",
                                                                   "remove")))
    example_ids = fields.List(StrictInteger(validate=validate.Range(min=1, max=MAX_ID)),
                              required=True,
                              validate=validate.Length(min=1, max=5000))
    label = Label(load_default=None, allow_none=True,
                  metadata={"description": "the new label (relabel only): a class name or index"})
    reason = fields.String(load_default=None, allow_none=True,
                           validate=lambda v: bool(check_text(v, 500)),
                           metadata={"description": "kept in each example's label history"})


class ActionResultSchema(ma.Schema):
    action = fields.String()
    changed = fields.Integer()
    example_ids = fields.List(fields.Integer(), metadata={"description": "the ones changed"})


class ProgressRowSchema(ma.Schema):
    version = fields.Integer(metadata={"description": "model version; 0 before the first"})
    answers = fields.Integer()
    relabels = fields.Integer()
    created_at = fields.DateTime(allow_none=True)


class ProgressSchema(ma.Schema):
    items = fields.List(fields.Nested(ProgressRowSchema))

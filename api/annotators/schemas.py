"""Request and response bodies of the annotators family."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from ..fields import MAX_ID, StrictInteger


class GoldRecordSchema(ma.Schema):
    answers = fields.Integer(metadata={"description": "gold checks answered"})
    correct = fields.Integer()
    accuracy = fields.Float(allow_none=True)


class AnnotatorSchema(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    answers = fields.Integer(metadata={"description": "answers given (gold checks included)"})
    agreement = fields.Float(allow_none=True, metadata={
        "description": "mean probability of their labels under everyone else's votes and "
                       "the model (agreement with the consensus, gold checks excluded)"})
    gold = fields.Nested(GoldRecordSchema)
    estimated_accuracy = fields.Float(allow_none=True, metadata={
        "description": "agreement with gold checks counted as 1 (right) or 0 (wrong)"})
    confusion = fields.List(fields.List(fields.Float()), metadata={
        "description": "estimated P(answer = column | true class = row)"})
    median_seconds = fields.Float(allow_none=True, metadata={
        "description": "median seconds from lease to answer"})
    flagged = fields.Boolean(metadata={
        "description": "estimated accuracy under min_annotator_accuracy with enough answers: "
                       "their votes are down-weighted"})
    suspended = fields.Boolean()
    suspended_by = fields.String(allow_none=True)
    suspended_at = fields.DateTime(allow_none=True)


class AnnotatorListSchema(ma.Schema):
    items = fields.List(fields.Nested(AnnotatorSchema))
    krippendorff_alpha = fields.Float(allow_none=True, metadata={
        "description": "nominal, over the query sides with at least two answers"})
    policy = fields.Dict(metadata={"description": "the project's crowd settings"})
    min_answers_to_flag = fields.Integer()
    classes = fields.List(fields.String())


class GoldInSchema(ma.Schema):
    example_ids = fields.List(StrictInteger(validate=validate.Range(min=1, max=MAX_ID)),
                              required=True, validate=validate.Length(min=1, max=1000))
    gold = fields.Boolean(load_default=True, metadata={
        "description": "true: their current labels are trusted; false: no longer gold"})


class GoldExampleSchema(ma.Schema):
    id = fields.Integer()
    external_id = fields.String(allow_none=True)
    gold = fields.Boolean()
    label = fields.Integer(allow_none=True, metadata={"description": "the trusted label"})
    label_name = fields.String(allow_none=True)


class GoldListSchema(ma.Schema):
    items = fields.List(fields.Nested(GoldExampleSchema))
    total = fields.Integer()

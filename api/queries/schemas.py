"""Request and response bodies of the queries family."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from ..fields import Label, Name


class QuerySideSchema(ma.Schema):
    id = fields.Integer()
    external_id = fields.String(allow_none=True)
    x = fields.Raw(metadata={"type": "array", "items": {}})
    text = fields.String(allow_none=True, metadata={"description": "a text project's text"})
    label = fields.Integer(metadata={"description": "the current label (class index)"})
    label_name = fields.String()
    prediction = fields.Integer(allow_none=True)
    prediction_name = fields.String(allow_none=True)
    probabilities = fields.List(fields.Float(), allow_none=True)


class AnswerSchema(ma.Schema):
    example_label = fields.Integer()
    example_label_name = fields.String()
    counterexample_label = fields.Integer(allow_none=True)
    counterexample_label_name = fields.String(allow_none=True)
    counterexample_not_sure = fields.Boolean()
    annotator = fields.String()
    answered_at = fields.DateTime()


class RankedSchema(ma.Schema):
    id = fields.Integer()
    external_id = fields.String(allow_none=True)
    label = fields.Integer(allow_none=True)
    label_name = fields.String(allow_none=True)
    score = fields.Float(metadata={"description": "the strategy's influence score"})


class ExplanationSchema(ma.Schema):
    origin = fields.String()
    margin = fields.Float()
    threshold = fields.Float(allow_none=True, metadata={
        "description": "the τ the example was screened with (stream queries)"})
    above_threshold = fields.Boolean(allow_none=True)
    counterexample_relation = fields.String(allow_none=True, metadata={
        "enum": ["supports_prediction", "contradicts_prediction"]})
    sentences = fields.List(fields.String(), metadata={
        "description": "why the service asks, as the annotator page shows it"})


class QuerySchema(ma.Schema):
    id = fields.Integer()
    status = fields.String(metadata={"enum": ["computing", "open", "leased", "collecting",
                                              "answered", "closed"]})
    origin = fields.String(metadata={"description": "stream (screening), bootstrap or audit"})
    closed_reason = fields.String(allow_none=True, metadata={
        "enum": ["resolved_by_model", "answered_elsewhere"],
        "description": "why a closed query lost its reason: the current model no longer "
                       "doubts the label, or a person labelled the example meanwhile"})
    explanation = fields.Nested(ExplanationSchema)
    example = fields.Nested(QuerySideSchema)
    counterexample = fields.Nested(QuerySideSchema, allow_none=True)
    margin = fields.Float(allow_none=True)
    strategy = fields.String()
    model_version = fields.Integer(allow_none=True)
    note = fields.String(allow_none=True)
    lease_expires_at = fields.DateTime(allow_none=True)
    answer = fields.Nested(AnswerSchema, allow_none=True)
    created_at = fields.DateTime()
    priority = fields.Float(allow_none=True, metadata={
        "description": "estimated probability that answering cleans a label (margin, the "
                       "counter-example's ranking score, the class's history of errors); "
                       "the queue leases the highest first"})
    priority_terms = fields.Dict(allow_none=True, metadata={
        "description": "the terms behind priority: margin, class_error_rate, "
                       "overall_error_rate, p_example, counterexample_standout, "
                       "counterexample_error_rate, p_counterexample"})
    counterexample_score = fields.Float(allow_none=True, metadata={
        "description": "the counter-example's influence score: how strongly it supports the "
                       "model's prediction for the example (higher: more)"})
    alternatives = fields.List(fields.Nested(RankedSchema), metadata={
        "description": "the next best candidates of the ranking, best first"})


class AnswerInSchema(ma.Schema):
    example_label = Label(required=True, metadata={
        "description": "the true label of the example: class name or index"})
    counterexample_label = Label(allow_none=True, load_default=None, metadata={
        "description": "the true label of the counter-example (required when the query has "
                       "one, unless counterexample_not_sure)"})
    counterexample_not_sure = fields.Boolean(load_default=False, metadata={
        "description": "the annotator cannot tell the counter-example's label"})


class CorrectionInSchema(AnswerInSchema):
    reason = Name(required=True, metadata={"description": "why the answer is corrected"})


class QueryListArgsSchema(ma.Schema):
    status = fields.String(validate=validate.OneOf(["computing", "open", "leased",
                                                    "collecting", "answered", "closed"]))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**53))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class QueryPageSchema(ma.Schema):
    items = fields.List(fields.Nested(QuerySchema))
    total = fields.Integer()

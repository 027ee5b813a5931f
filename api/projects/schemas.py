"""Request and response bodies of the projects family."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from cincer_service.catalog import STRATEGY_NAMES
from cincer_service.service.service import MODEL_KINDS, RETRAIN_MODES, ROLES

from ..fields import StrictFloat, StrictInteger


class ModelSpecSchema(ma.Schema):
    kind = fields.String(validate=validate.OneOf(MODEL_KINDS),
                         metadata={"description": "lr (logistic regression), fc (one hidden "
                                                  "layer) or cnn (input_shape [h, w, c])"})
    seed = StrictInteger(validate=validate.Range(min=0))
    max_epochs = StrictInteger(validate=validate.Range(min=1, max=100_000))
    warm_epochs = StrictInteger(validate=validate.Range(min=1, max=100_000))


class RetrainSpecSchema(ma.Schema):
    mode = fields.String(validate=validate.OneOf(RETRAIN_MODES))
    every_n_answers = StrictInteger(validate=validate.Range(min=1))


class ProjectCreateSchema(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    classes = fields.List(fields.String(validate=validate.Length(min=1, max=200)),
                          required=True, validate=validate.Length(min=2, max=10_000))
    input_shape = fields.List(StrictInteger(validate=validate.Range(min=1)), required=True,
                              validate=validate.Length(min=1, max=3))
    model = fields.Nested(ModelSpecSchema)
    threshold = StrictFloat(validate=validate.Range(min=0, max=1),
                            metadata={"description": "margin above which an example is "
                                                     "suspicious (default 0.2)"})
    strategy = fields.String(validate=validate.OneOf(sorted(STRATEGY_NAMES)))
    damping = StrictFloat(validate=validate.Range(min=0, min_inclusive=False))
    bootstrap_size = StrictInteger(validate=validate.Range(min=2))
    retrain = fields.Nested(RetrainSpecSchema)


class ProjectSchema(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    classes = fields.List(fields.String())
    input_shape = fields.List(fields.Integer())
    model = fields.Dict()
    threshold = fields.Float()
    strategy = fields.String()
    damping = fields.Float()
    bootstrap_size = fields.Integer()
    retrain = fields.Dict()
    created_at = fields.DateTime()
    model_version = fields.Integer(allow_none=True)


class ProjectListSchema(ma.Schema):
    items = fields.List(fields.Nested(ProjectSchema))


class TokenCreateSchema(ma.Schema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    name = fields.String(validate=validate.Length(min=1, max=200))


class TokenSchema(ma.Schema):
    id = fields.Integer()
    project_id = fields.Integer()
    role = fields.String()
    name = fields.String()
    token = fields.String(metadata={"description": "the secret; shown only in this answer"})
    created_at = fields.DateTime()


class StatsSchema(ma.Schema):
    examples = fields.Dict(keys=fields.String(), values=fields.Integer(),
                           metadata={"description": "examples per status"})
    queries = fields.Dict(keys=fields.String(), values=fields.Integer(),
                          metadata={"description": "queries per status"})
    cleaned = fields.Integer(metadata={"description": "examples whose label now differs "
                                                      "from the original"})
    relabelled = fields.Integer()
    model_version = fields.Integer(allow_none=True)
    retrain_wanted = fields.Boolean()


class ExportArgsSchema(ma.Schema):
    format = fields.String(load_default="csv", validate=validate.OneOf(("csv", "jsonl")))

"""Request and response bodies of the projects family."""
from __future__ import annotations

import math

import marshmallow as ma
from marshmallow import fields, post_load, validate, validates_schema

from cincer_service import spec
from cincer_service.catalog import STRATEGY_NAMES
from cincer_service.service import ROLES

from ..fields import Name, StrictFloat, StrictInteger


def _range(key: str) -> validate.Range:
    low, high = spec.LIMITS[key]
    return validate.Range(min=low, max=high)


class ModelSpecSchema(ma.Schema):
    kind = fields.String(validate=validate.OneOf(spec.MODEL_KINDS),
                         metadata={"description": "lr (logistic regression), fc (one hidden "
                                                  "layer) or cnn (input_shape [h, w, c])"})
    seed = StrictInteger(validate=_range("seed"))
    max_epochs = StrictInteger(validate=_range("epochs"))
    warm_epochs = StrictInteger(validate=_range("epochs"))


class RetrainSpecSchema(ma.Schema):
    mode = fields.String(validate=validate.OneOf(spec.RETRAIN_MODES))
    every_n_answers = StrictInteger(validate=_range("retrain_every"))


class ProjectCreateSchema(ma.Schema):
    """A new project; loads into a ``cincer_service.spec.ProjectSpec`` (defaults filled)."""

    name = Name(required=True)
    classes = fields.List(Name(), required=True, validate=validate.Length(
        *spec.LIMITS["classes"]))
    input_shape = fields.List(StrictInteger(validate=validate.Range(min=1, max=1_000_000)),
                              required=True, validate=validate.Length(*spec.LIMITS["input_dims"]))
    model = fields.Nested(ModelSpecSchema)
    threshold = StrictFloat(validate=validate.Range(min=0, max=1), metadata={
        "description": f"margin above which an example is suspicious "
                       f"(default {spec.DEFAULT_THRESHOLD})"})
    strategy = fields.String(validate=validate.OneOf(sorted(STRATEGY_NAMES)),
                             metadata={"description": f"default {spec.DEFAULT_STRATEGY}"})
    damping = StrictFloat(validate=_range("damping"))
    bootstrap_size = StrictInteger(validate=_range("bootstrap_size"), metadata={
        "description": f"default {spec.DEFAULT_BOOTSTRAP_SIZE}"})
    retrain = fields.Nested(RetrainSpecSchema)

    @validates_schema
    def consistent(self, data, **_):
        classes, shape = data.get("classes") or [], data.get("input_shape") or []
        if len(set(classes)) != len(classes):
            raise ma.ValidationError("class names must be distinct", "classes")
        if shape and math.prod(shape) > spec.LIMITS["input_size"]:
            raise ma.ValidationError(f"at most {spec.LIMITS['input_size']} numbers per "
                                     "example", "input_shape")
        if (data.get("model") or {}).get("kind") == "cnn" and len(shape) != 3:
            raise ma.ValidationError({"kind": ["cnn needs input_shape [height, width, "
                                               "channels]"]}, "model")

    @post_load
    def to_spec(self, data, **_) -> spec.ProjectSpec:
        return spec.ProjectSpec.build(**data)


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
    state = fields.String(metadata={"enum": ["collecting_bootstrap", "training_first_model",
                                             "ready"]})


class ProjectListSchema(ma.Schema):
    items = fields.List(fields.Nested(ProjectSchema))


class TokenCreateSchema(ma.Schema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    name = Name()


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
    state = fields.String(metadata={"description": "collecting_bootstrap (the first model "
                                                   "waits for bootstrap_size examples of two "
                                                   "classes), training_first_model or ready"})
    bootstrap = fields.Dict(metadata={"description": "{have, need, classes, ready}"})
    retrain_wanted = fields.Boolean()
    failing_jobs = fields.List(fields.Dict(), metadata={
        "description": "jobs backing off after failures: job, arg, failures, last_error, "
                       "retry_at"})


class ExportArgsSchema(ma.Schema):
    format = fields.String(load_default="csv", validate=validate.OneOf(("csv", "jsonl")))

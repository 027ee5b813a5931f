"""Request and response bodies of the projects family."""
from __future__ import annotations

import math

import marshmallow as ma
from flask import current_app
from marshmallow import fields, post_load, pre_load, validate, validates, validates_schema

from cincer_service import spec
from cincer_service.catalog import STRATEGY_NAMES
from cincer_service.service import ROLES
from cincer_service.service.projects import FIXED_SETTINGS, MUTABLE_SETTINGS

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
    schedule = fields.String(validate=validate.OneOf(spec.TRAINING_SCHEDULES), metadata={
        "description": "when training stops: validation (held-out loss), accuracy (a fixed "
                       "training accuracy) or fixed (the epoch cap); default: the retrain "
                       "mode's (" + ", ".join(f"{m} {spec.training_defaults(m).schedule}"
                                              for m in spec.RETRAIN_MODES) + ")"})


class RetrainSpecSchema(ma.Schema):
    mode = fields.String(validate=validate.OneOf(spec.RETRAIN_MODES))
    every_n_answers = StrictInteger(validate=_range("retrain_every"))


class CrowdSpecSchema(ma.Schema):
    """Overlap and consensus (``spec.CrowdPolicy``); every key optional."""

    answers_per_query = StrictInteger(validate=_range("answers_per_query"), metadata={
        "description": "answers a query takes at least (default "
                       f"{spec.DEFAULT_ANSWERS_PER_QUERY}: the first answer is the label)"})
    max_answers_per_query = StrictInteger(validate=_range("answers_per_query"), metadata={
        "description": "answers a query may take while its consensus is unsure (default "
                       f"{spec.DEFAULT_MAX_ANSWERS_PER_QUERY})"})
    consensus_confidence = StrictFloat(validate=_range("consensus_confidence"), metadata={
        "description": "posterior each side needs before the consensus decides (default "
                       f"{spec.DEFAULT_CONSENSUS_CONFIDENCE})"})
    gold_share = StrictFloat(validate=_range("gold_share"), metadata={
        "description": "share of leases that are gold checks when gold examples exist "
                       f"(default {spec.DEFAULT_GOLD_SHARE})"})
    min_annotator_accuracy = StrictFloat(validate=_range("min_annotator_accuracy"), metadata={
        "description": "estimated accuracy under which an annotator with at least "
                       f"{spec.MIN_ANSWERS_TO_FLAG} answers is flagged (default "
                       f"{spec.DEFAULT_MIN_ANNOTATOR_ACCURACY})"})

    @validates_schema
    def ordered(self, data, **_):
        low, high = data.get("answers_per_query"), data.get("max_answers_per_query")
        if low is not None and high is not None and low > high:
            raise ma.ValidationError("may not exceed max_answers_per_query",
                                     "answers_per_query")


class ProjectSettingsSchema(ma.Schema):
    """The settings a project may change after creation, with the ranges of creation."""

    threshold = StrictFloat(validate=validate.Range(min=0, max=1), metadata={
        "description": f"margin above which an example is suspicious "
                       f"(default {spec.DEFAULT_THRESHOLD})"})
    strategy = fields.String(validate=validate.OneOf(sorted(STRATEGY_NAMES)),
                             metadata={"description": f"default {spec.DEFAULT_STRATEGY}"})
    damping = StrictFloat(validate=_range("damping"))
    bootstrap_size = StrictInteger(validate=_range("bootstrap_size"), metadata={
        "description": f"default {spec.DEFAULT_BOOTSTRAP_SIZE}"})
    retrain = fields.Nested(RetrainSpecSchema)
    query_budget = StrictFloat(allow_none=True, validate=_range("query_budget"), metadata={
        "description": "at most about this many questions per 100 incoming examples: the "
                       "threshold then follows the matching quantile of recent margins; "
                       "null (the default) screens with the fixed threshold"})
    queue_order = fields.String(validate=validate.OneOf(spec.QUEUE_ORDERS), metadata={
        "description": "priority (default: the query most likely to clean a label first) "
                       "or fifo (the oldest first)"})
    crowd = fields.Nested(CrowdSpecSchema, metadata={
        "description": "several annotators per query and their consensus"})


class ProjectCreateSchema(ProjectSettingsSchema):
    """A new project; loads into a ``cincer_service.spec.ProjectSpec`` (defaults filled)."""

    name = Name(required=True)
    classes = fields.List(Name(), required=True, validate=validate.Length(
        *spec.LIMITS["classes"]))
    input_shape = fields.List(StrictInteger(validate=validate.Range(min=1, max=1_000_000)),
                              validate=validate.Length(*spec.LIMITS["input_dims"]), metadata={
                                  "description": "shape of one input; required except for text "
                                                 "(default [1024] hashed n-gram features, or "
                                                 "the length of your embeddings)"})
    input_kind = fields.String(load_default="tabular", validate=validate.OneOf(spec.INPUT_KINDS),
                               metadata={"description": "tabular (a vector, shown as a table), "
                                                        "image ([h, w] or [h, w, c]) or text"})
    feature_names = fields.List(Name(), metadata={
        "description": "tabular: one name per input number, shown to annotators"})
    model = fields.Nested(ModelSpecSchema)
    holdout_share = StrictFloat(validate=_range("holdout_share"), metadata={
        "description": "share of each class of the bootstrap set held out of training to "
                       "score every model version on the same (noisy) labels (default "
                       f"{spec.DEFAULT_HOLDOUT_SHARE}: none)"})

    @validates_schema
    def consistent(self, data, **_):
        classes, shape = data.get("classes") or [], data.get("input_shape") or []
        kind, names = data.get("input_kind", "tabular"), data.get("feature_names")
        if len(set(classes)) != len(classes):
            raise ma.ValidationError("class names must be distinct", "classes")
        if not shape and kind != "text":
            raise ma.ValidationError("required for tabular and image projects", "input_shape")
        if kind == "image" and len(shape) not in (2, 3):
            raise ma.ValidationError("an image project needs [height, width] or [height, "
                                     "width, channels]", "input_shape")
        if kind == "text" and len(shape) > 1:
            raise ma.ValidationError("a text project's input is a vector: [n_features]",
                                     "input_shape")
        if names is not None and (kind != "tabular" or len(names) != math.prod(shape or [0])):
            raise ma.ValidationError("tabular projects only, one name per input number",
                                     "feature_names")
        if shape and math.prod(shape) > spec.LIMITS["input_size"]:
            raise ma.ValidationError(f"at most {spec.LIMITS['input_size']} numbers per "
                                     "example", "input_shape")
        if (data.get("model") or {}).get("kind") == "cnn" and len(shape) != 3:
            raise ma.ValidationError({"kind": ["cnn needs input_shape [height, width, "
                                               "channels]"]}, "model")

    @post_load
    def to_spec(self, data, **_) -> spec.ProjectSpec:
        return spec.ProjectSpec.build(**data)


class ProjectUpdateSchema(ProjectSettingsSchema):
    """Any of a project's settings; name, classes, input_shape and model are fixed (422)."""

    @pre_load
    def fixed_settings(self, data, **_):
        if isinstance(data, dict):
            fixed = [k for k in FIXED_SETTINGS if k in data]
            if fixed:
                raise ma.ValidationError({k: ["cannot be changed after creation"]
                                          for k in fixed})
        return data

    @validates_schema
    def not_empty(self, data, **_):
        if not data:
            raise ma.ValidationError("give at least one of " + ", ".join(MUTABLE_SETTINGS))
        if "retrain" in data and not data["retrain"]:
            raise ma.ValidationError("give mode or every_n_answers", "retrain")


class ProjectEventSchema(ma.Schema):
    id = fields.Integer()
    project_id = fields.Integer()
    actor = fields.String(metadata={"description": "name of the token that made the change"})
    changes = fields.Dict(keys=fields.String(), values=fields.Dict(), metadata={
        "description": 'setting -> {"old": ..., "new": ...}'})
    at = fields.DateTime()


class ProjectHistorySchema(ma.Schema):
    items = fields.List(fields.Nested(ProjectEventSchema), metadata={
        "description": "settings changes, oldest first"})


class ProjectSchema(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    classes = fields.List(fields.String())
    input_shape = fields.List(fields.Integer())
    input_kind = fields.String()
    feature_names = fields.List(fields.String(), allow_none=True)
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
    threshold_mode = fields.String(metadata={"enum": ["fixed", "budget"]})
    query_budget = fields.Float(allow_none=True, metadata={
        "description": "questions per 100 incoming examples, or null (fixed threshold)"})
    queue_order = fields.String(metadata={"enum": list(spec.QUEUE_ORDERS)})
    holdout_share = fields.Float()
    crowd = fields.Dict()


class ProjectListSchema(ma.Schema):
    items = fields.List(fields.Nested(ProjectSchema))


class TokenCreateSchema(ma.Schema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    name = Name()


class TokenInfoSchema(ma.Schema):
    """A token as the admin lists it: never the secret or its hash."""

    id = fields.Integer()
    project_id = fields.Integer()
    role = fields.String(metadata={"enum": list(ROLES)})
    name = fields.String()
    created_at = fields.DateTime()
    revoked = fields.Boolean(metadata={"description": "revoked tokens no longer "
                                                      "authenticate"})


class TokenListSchema(ma.Schema):
    items = fields.List(fields.Nested(TokenInfoSchema))


class TokenSchema(ma.Schema):
    id = fields.Integer()
    project_id = fields.Integer()
    role = fields.String()
    name = fields.String()
    token = fields.String(metadata={"description": "the secret; shown only in this answer"})
    created_at = fields.DateTime()


class CurvePointSchema(ma.Schema):
    version = fields.Integer()
    answers = fields.Integer(allow_none=True, metadata={
        "description": "queries answered when the version's training set was read (null "
                       "for versions trained before this was recorded)"})
    train_size = fields.Integer()
    created_at = fields.DateTime()
    status = fields.String(metadata={
        "enum": ["ok", "empty", "missing"],
        "description": "ok (scored), empty (no evaluation set when it was trained) or "
                       "missing (trained before versions were scored on it)"})
    n = fields.Integer(metadata={"description": "evaluation examples scored"})
    accuracy = fields.Float(allow_none=True)
    f1_macro = fields.Float(allow_none=True)
    log_loss = fields.Float(allow_none=True)
    ece = fields.Float(allow_none=True)


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
    threshold = fields.Dict(metadata={
        "description": "{mode (fixed, budget or budget_warmup), fixed, budget, effective: the "
                       "threshold the next screening starts from, window: margins known}"})
    heldout = fields.Dict(allow_none=True, metadata={
        "description": "the newest model version's held-out metrics: {version, trusted, "
                       "holdout_noisy, min_per_class}; each set is {status: ok, n, accuracy, "
                       "f1_weighted, log_loss, ece} or {status: too_few, n, min} or "
                       "{status: off}"})
    evaluation = fields.Dict(allow_none=True, metadata={
        "description": "the newest model version's scores on the evaluation set (examples "
                       "ingested with split evaluation; labels trusted, never trained on): "
                       "{version, answers, status: ok, n, per_class, accuracy, f1_macro, "
                       "f1_weighted, log_loss, ece} or {version, answers, status: empty, "
                       "n: 0}; null before the first model"})
    cleaning_curve = fields.List(fields.Nested(CurvePointSchema), metadata={
        "description": "per model version, oldest first, its scores on the evaluation set "
                       "and the answers given before it was trained"})


class ExportArgsSchema(ma.Schema):
    format = fields.String(load_default="csv", validate=validate.OneOf(("csv", "jsonl")))


class ImportSchema(ma.Schema):
    items = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1), metadata={
        "description": "the records of an export (GET /projects/{pid}/export?format=jsonl: "
                       "one record per line, here as a JSON list), 1 to the service's "
                       "max_batch (CINCER_MAX_BATCH, default 1000) per request; all or "
                       "nothing. Each record: the input (x, text with an optional "
                       "embedding, or image as base64 PNG/JPEG; x wins over image), label "
                       "and label_name (the class name wins), original_label(_name), status, "
                       "confirmed, source, external_id, created_at, changed_by, changed_at "
                       "and history (label events: at, actor, old_label(_name), "
                       "new_label(_name), why, reason, query_id); the crowd: gold and "
                       "gold_label, queries (answered queries with their answers: "
                       "annotator, labels, gold, agreement, seconds, times) and, on one "
                       "record, crowd (annotators: name, suspended, confusion; state). id "
                       "numbers nothing in the new project; it only ties a query to its "
                       "counter-example within the request (counterexample_external_id "
                       "first)"})

    @validates("items")
    def batch_limit(self, items, **_):
        limit = current_app.extensions["cincer"].settings.max_batch
        if len(items) > limit:
            raise ma.ValidationError(f"at most {limit} records per request (got {len(items)})")


class ImportedSchema(ma.Schema):
    id = fields.Integer()
    external_id = fields.String(allow_none=True)
    status = fields.String()


class ImportResultSchema(ma.Schema):
    imported = fields.Integer(metadata={"description": "examples stored"})
    events = fields.Integer(metadata={"description": "label-history events stored"})
    queries = fields.Integer(metadata={"description": "answered queries stored"})
    answers = fields.Integer(metadata={"description": "annotators' answers stored"})
    annotators = fields.Integer(metadata={"description": "annotators created or updated"})
    statuses = fields.Dict(keys=fields.String(), values=fields.Integer())
    items = fields.List(fields.Nested(ImportedSchema))

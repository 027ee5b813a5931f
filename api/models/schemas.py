"""Response bodies of the models family."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields


class ModelVersionSchema(ma.Schema):
    version = fields.Integer()
    train_size = fields.Integer()
    mode = fields.String(metadata={"description": "scratch or warm"})
    generation = fields.Integer()
    training = fields.Dict(allow_none=True, metadata={
        "description": "how this version was trained: schedule (validation, accuracy or "
                       "fixed; the project's, by default its retrain mode's), standardize, "
                       "max_epochs, warm_epochs, early_stop_accuracy, patience, monitor, "
                       "refit, and the project's counter-example damping; null for versions "
                       "trained before it was recorded"})
    metrics = fields.Dict(metadata={"description": "train_accuracy, epochs, schedule, "
                                                   "best_epoch, validation_loss, refit_epochs "
                                                   "(epochs retrained on all data), seconds, and "
                                                   "heldout: {trusted, holdout_noisy, "
                                                   "min_per_class}, each set {status: ok, n, "
                                                   "accuracy, f1_weighted, log_loss, ece} or "
                                                   "{status: too_few, n, min} or {status: off}"})
    created_at = fields.DateTime()


class ModelListSchema(ma.Schema):
    items = fields.List(fields.Nested(ModelVersionSchema))


class RetrainQueuedSchema(ma.Schema):
    status = fields.String()
    wanted_generation = fields.Integer()

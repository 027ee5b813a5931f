"""``/projects/<pid>/models``."""
from __future__ import annotations

from cincer_service.service import training

from ..auth import requires
from ..extensions import get_context
from ..fields import Blueprint
from .schemas import ModelListSchema, RetrainQueuedSchema

blp = Blueprint("models", __name__, url_prefix="/projects/<int:pid>/models",
                description="Model versions and retraining.")


@blp.route("", methods=["GET"])
@requires()
@blp.response(200, ModelListSchema)
def list_models(pid):
    """Every model version with its training-set size, metrics and creation time."""
    return {"items": training.list_models(get_context(), pid)}


@blp.route("/retrain", methods=["POST"])
@requires("admin")
@blp.response(202, RetrainQueuedSchema)
def retrain(pid):
    """Queue a retrain on the current labels (coalesced with any retrain already wanted)."""
    return training.request_retrain(get_context(), pid)

"""``/integrations/label-studio/<pid>/``: Label Studio's ML backend protocol.

Label Studio is given this URL as a project's ML backend, with HTTP basic auth whose
password is a token of project ``pid`` (role ``admin``; any user name). The views are thin:
they authenticate, then call ``cincer_service.service.label_studio``.

* ``GET /health`` (no auth: Label Studio checks it before it sends credentials),
* ``POST /setup`` (the label config; answers ``model_version``),
* ``POST /predict`` (predictions in Label Studio's result format),
* ``POST /webhook`` (annotation events; answers at once, screening runs as a job),
* ``GET /status`` and ``POST /sync`` (ours: the link and an on-demand pull),
* ``GET /export`` and ``POST /import`` (Label Studio's JSON task format).
"""
from __future__ import annotations

import base64
import binascii

from flask import Blueprint, g, jsonify, request

from cincer_service.service import Unauthorized, access, label_studio

from ...errors import error_response
from ...extensions import get_context
from ...fields import PARSED_BODY

bp = Blueprint("label_studio", __name__, url_prefix="/integrations/label-studio/<int:pid>")

ROLES = ("admin",)


def basic_principal(pid: int):
    """The project token sent as the basic-auth password; ``Unauthorized`` otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "bearer":
        secret = encoded.strip()
    elif scheme.lower() == "basic":
        try:
            secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed basic auth header") from None
    else:
        raise Unauthorized("send HTTP basic auth: any user name, a project token as password")
    principal = access.authenticate(get_context(), secret)
    access.authorize(principal, pid, *ROLES)
    return principal


def body():
    return g.get(PARSED_BODY) if request.is_json else None


@bp.errorhandler(Unauthorized)
def unauthorized(error: Unauthorized):
    return error_response(401, error.code, error.message, error.details,
                          {"WWW-Authenticate": 'Basic realm="cincer-service"'})


@bp.route("/health", methods=["GET"])
@bp.route("/", methods=["GET"])
def health(pid):
    return jsonify({"status": "UP", "model_class": "cincer-service"})


@bp.route("/setup", methods=["POST"])
def setup(pid):
    principal = basic_principal(pid)
    backend_url = request.url_root.rstrip("/") + bp.url_prefix.replace("<int:pid>", str(pid))
    return jsonify(label_studio.setup(get_context(), pid, principal, body(),
                                      backend_url=backend_url,
                                      auth_header=request.headers.get("Authorization")))


@bp.route("/predict", methods=["POST"])
def predict(pid):
    basic_principal(pid)
    return jsonify(label_studio.predict(get_context(), pid, body()))


@bp.route("/webhook", methods=["POST"])
def webhook(pid):
    principal = basic_principal(pid)
    return jsonify(label_studio.handle_webhook(get_context(), pid, principal, body()))


@bp.route("/status", methods=["GET"])
def status(pid):
    basic_principal(pid)
    return jsonify(label_studio.get_status(get_context(), pid))


@bp.route("/sync", methods=["POST"])
def sync(pid):
    basic_principal(pid)
    return jsonify(label_studio.request_sync(get_context(), pid)), 202


@bp.route("/export", methods=["GET"])
def export(pid):
    basic_principal(pid)
    return jsonify(label_studio.export_tasks(get_context(), pid))


@bp.route("/import", methods=["POST"])
def import_tasks(pid):
    basic_principal(pid)
    return jsonify(label_studio.import_tasks(get_context(), pid, body())), 201

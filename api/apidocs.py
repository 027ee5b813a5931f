"""Swagger UI's scripts and styles, served by the app itself (no CDN).

The files come from the ``swagger-ui-bundle`` package; ``OPENAPI_SWAGGER_UI_URL`` in
``api.config`` points flask-smorest's docs page at ``/api/v1/docs/assets/``.
"""
from __future__ import annotations

from flask import Blueprint, abort, send_from_directory

from .config import API_PREFIX

ASSETS_URL = f"{API_PREFIX}/docs/assets/"

bp = Blueprint("apidocs_assets", __name__, url_prefix=ASSETS_URL.rstrip("/"))


def assets_dir() -> str:
    """The directory of Swagger UI's ``dist`` files inside the installed package."""
    from swagger_ui_bundle import swagger_ui_path
    return str(swagger_ui_path)


@bp.route("/<path:filename>")
def asset(filename):
    """One Swagger UI file (JS, CSS, icons); cached for a day."""
    if not filename.endswith((".js", ".css", ".png", ".map")):
        abort(404)
    return send_from_directory(assets_dir(), filename, max_age=86400)

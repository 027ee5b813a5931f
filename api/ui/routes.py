"""``/ui/``: the annotator page and ``/ui/overview``: the overview; static files beside.
The site root ``/`` redirects to the annotator page."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from ..config import API_PREFIX

bp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates",
               static_folder="static", static_url_path="/static")


def to_annotator():
    """``/``: a redirect to the annotator page (query string kept, e.g. ``?project=1``)."""
    query = request.query_string.decode("latin-1")
    return redirect(url_for("ui.annotate") + (f"?{query}" if query else ""), code=302)


# The blueprint's routes live under /ui; the root is an app-wide rule added with it.
bp.record_once(lambda state: state.app.add_url_rule("/", "root", to_annotator,
                                                    methods=["GET"]))


@bp.route("/")
def annotate():
    """The annotator page: one query (example and counter-example) at a time."""
    return render_template("ui/annotate.html", api_prefix=API_PREFIX)


@bp.route("/overview")
def overview():
    """The data owner's overview: label → prediction cells, their examples, batch fixes."""
    return render_template("ui/overview.html", api_prefix=API_PREFIX)


@bp.after_request
def no_framing(response):
    """The pages are never framed by another site; scripts only from this host."""
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data: blob:; "
                                "style-src 'self'; script-src 'self'")
    return response

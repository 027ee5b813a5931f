"""The labeling service's REST API: thin Flask handlers over ``cincer_service.service``.

    gunicorn 'api:create_app()'          # production (see deploy/gunicorn.conf.py)
    cincer-service serve                 # embedded default (see api/commands.py)

``create_app`` is a short list of steps; each resource family is one flask-smorest
blueprint (``api/<family>/routes.py``) with its marshmallow schemas beside it.
"""
from __future__ import annotations

import logging

from flask import Flask, request

from .config import API_PREFIX, load_config
from .fields import BoundedIntConverter

__all__ = ["create_app", "API_PREFIX"]

log = logging.getLogger(__name__)


def create_app(settings=None, service=None, config: dict | None = None) -> Flask:
    """Build the API app.

    Parameters
    ----------
    settings : ``cincer_service.service.Settings`` (default ``Settings.from_env()``).
    service : a ``ServiceContext``; by default one is built from ``settings``. A context the
        factory builds itself also gets the ``CINCER_ADMIN_TOKEN`` registered and, in
        embedded mode, a started ``ThreadDispatcher`` (so ``gunicorn 'api:create_app()'``
        works without Redis); a context passed in keeps its dispatcher.
    config : Flask config overrides (after defaults and ``CINCER_FLASK_*`` variables).

    With ``settings.redis_url`` set, Celery is initialised (the ``cincer_service.background``
    entry point, ``tasks.celery_app``) and background jobs go to the Celery workers.
    """
    from cincer_service.service import Settings, build_context

    settings = settings or (service.settings if service is not None else Settings.from_env())
    owns_service = service is None
    if owns_service:
        service = build_context(settings)
    app = Flask(__name__)
    app.url_map.converters["int"] = BoundedIntConverter     # before any route is added
    load_config(app, config)
    app.extensions["cincer"] = service
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_request_rules(app)
    register_request_metrics(app)
    register_background_work(app, settings, owns_service)
    return app


def register_extensions(app: Flask) -> None:
    from .extensions import CincerApi, RequestCounter
    from .openapi_examples import OperationExamples
    # One Api per app: flask-smorest keeps the spec on the Api object.
    app.extensions["cincer_api"] = CincerApi(
        app, spec_kwargs={"extra_plugins": [OperationExamples()]})
    app.extensions["cincer_requests"] = RequestCounter()


def register_blueprints(app: Flask) -> None:
    from . import (
        annotators,
        apidocs,
        audits,
        examples,
        models,
        ops,
        overview,
        projects,
        queries,
        sources,
        ui,
        webhooks,
    )
    api = app.extensions["cincer_api"]
    for family in (projects, examples, queries, models, audits, overview, webhooks,
                   annotators, sources):
        api.register_blueprint(family.blp, url_prefix=API_PREFIX + family.blp.url_prefix)
    api.register_blueprint(ops.blp)          # /healthz and /metrics at the root
    app.register_blueprint(apidocs.bp)       # Swagger UI's files, served offline
    app.register_blueprint(ui.bp)            # the annotator page and the overview, /ui/
    from .integrations import label_studio
    app.register_blueprint(label_studio.bp)  # Label Studio's ML backend protocol


def register_errorhandlers(app: Flask) -> None:
    from .errors import register_errorhandlers as install
    install(app)


def register_request_rules(app: Flask) -> None:
    from .requests import register_request_rules as install
    install(app)


def register_request_metrics(app: Flask) -> None:
    """Count every answered request by method, route template and status."""

    @app.after_request
    def count_request(response):
        route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        app.extensions["cincer_requests"].count(request.method, route, response.status_code)
        return response


def register_background_work(app: Flask, settings, owns_service: bool) -> None:
    """Celery when a broker is configured; an in-process worker for a service we built."""
    service = app.extensions["cincer"]
    if settings.redis_url:
        install_celery(app)
    elif owns_service:
        from cincer_service.service import runner, workers
        dispatcher = runner.thread_dispatcher(service).start()
        service.set_dispatcher(dispatcher)
        app.extensions["cincer_dispatcher"] = dispatcher
        workers.register_embedded_worker(service)
    if owns_service and settings.admin_token:
        ensure_admin_token(service, settings.admin_token)


BACKGROUND_ENTRY_POINTS = "cincer_service.background"


def install_celery(app: Flask) -> None:
    """Install the Celery adapter (``tasks.celery_app.celery_init_app``), found through
    the ``cincer_service.background`` entry point so that ``api`` never imports ``tasks``."""
    from importlib.metadata import entry_points
    found = entry_points(group=BACKGROUND_ENTRY_POINTS, name="celery")
    if not found:
        raise RuntimeError("CINCER_REDIS_URL is set but the Celery adapter is not installed "
                           "(entry point cincer_service.background:celery); reinstall the "
                           "package")
    next(iter(found)).load()(app)


def ensure_admin_token(service, secret: str | None) -> str | None:
    """``access.ensure_admin_token`` that tolerates another process registering the same
    token at the same moment (gunicorn workers start together)."""
    from sqlalchemy.exc import IntegrityError

    from cincer_service.service import access
    try:
        return access.ensure_admin_token(service, secret)
    except IntegrityError:
        return access.ensure_admin_token(service, secret)

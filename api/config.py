"""Flask configuration: defaults here, then ``CINCER_FLASK_*`` environment variables.

The service's own settings (database, broker, batch limits, ...) are
``cincer_service.service.Settings.from_env()``; this module only holds what Flask and
flask-smorest need.
"""
from __future__ import annotations

API_PREFIX = "/api/v1"


class DefaultConfig:
    """Defaults; any key can be overridden with ``CINCER_FLASK_<KEY>`` (JSON-parsed value)."""

    API_TITLE = "cincer-service"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = API_PREFIX
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "docs"
    # Served by the app (``api.apidocs``, from the swagger-ui-bundle package): no CDN, so
    # the docs work offline. ReDoc ships no offline bundle on PyPI, so it is not offered.
    OPENAPI_SWAGGER_UI_URL = API_PREFIX + "/docs/assets/"
    OPENAPI_SWAGGER_UI_CONFIG = {"validatorUrl": None, "deepLinking": True}
    OPENAPI_REDOC_PATH = None
    API_SPEC_OPTIONS = {
        "info": {"description": "Label cleaning with counter-examples (CINCER). Send "
                                "`Authorization: Bearer <token>`; errors are always "
                                "`{\"error\": {\"code\", \"message\", \"details\"}}`."},
        "components": {"securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "an admin or project token"}}},
        "security": [{"bearerAuth": []}],
    }
    # A batch of 1000 examples of 28x28 floats is about 15 MB of JSON.
    MAX_CONTENT_LENGTH = 32 * 1024 * 1024
    JSON_SORT_KEYS = False
    ENV_PREFIX = "CINCER_FLASK"


def load_config(app, overrides: dict | None = None) -> None:
    """Defaults, then ``CINCER_FLASK_*`` variables, then explicit ``overrides`` (tests)."""
    app.config.from_object(DefaultConfig)
    app.config.from_prefixed_env(DefaultConfig.ENV_PREFIX)
    if overrides:
        app.config.update(overrides)

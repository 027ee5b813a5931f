"""The worker entry point: build the Flask app, expose its Celery app.

    celery -A tasks.worker worker --loglevel info     # or: cincer-service worker
"""
from api import create_app

from . import celery_init_app

flask_app = create_app()
# The app factory installs Celery when CINCER_REDIS_URL is set; do it here if it did not.
celery_app = flask_app.extensions.get("celery") or celery_init_app(flask_app)

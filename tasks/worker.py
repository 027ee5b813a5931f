"""The worker entry point, and the only module that joins Flask and Celery: build the Flask
app, expose its Celery app (Flask's ``examples/celery/make_celery.py``).

    celery -A tasks.worker worker --loglevel info     # or: cincer-service worker
"""
from api import create_app
from tasks.celery_app import celery_init_app

flask_app = create_app()
# The app factory installs Celery when CINCER_REDIS_URL is set; do it here if it did not.
celery_app = flask_app.extensions.get("celery") or celery_init_app(flask_app)

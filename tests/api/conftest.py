"""A Flask test client over a service context on temporary SQLite, jobs run inline."""
import numpy as np
import pytest

from api import create_app
from cincer_service.service import (
    Settings,
    access,
    build_context,
    runner,
)

ADMIN = "admin-secret-for-tests"
STREAMED = 60 + 140          # bootstrap plus stream in the `streamed` fixture


@pytest.fixture
def service(tmp_path):
    ctx = build_context(Settings(data_dir=str(tmp_path), admin_token=ADMIN, max_batch=200))
    ctx.set_dispatcher(runner.inline_dispatcher(ctx))
    access.ensure_admin_token(ctx, ADMIN)
    return ctx


@pytest.fixture
def app(service):
    app = create_app(service=service, config={"TESTING": True})
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


PROJECT = {"name": "breast", "classes": ["malignant", "benign"], "input_shape": [30],
           "model": {"kind": "lr", "max_epochs": 60}, "bootstrap_size": 60,
           "retrain": {"mode": "warm", "every_n_answers": 3}}


@pytest.fixture
def project(client):
    """A project with one token per role: ``{"id", "tokens": {role: secret}}``."""
    created = client.post("/api/v1/projects", json=PROJECT, headers=bearer(ADMIN))
    assert created.status_code == 201, created.json
    pid = created.json["id"]
    tokens = {"admin": ADMIN}
    for role in ("ingest", "annotator", "viewer"):
        answer = client.post(f"/api/v1/projects/{pid}/tokens", json={"role": role},
                             headers=bearer(ADMIN))
        assert answer.status_code == 201, answer.json
        tokens[role] = answer.json["token"]
    return {"id": pid, "tokens": tokens}


@pytest.fixture
def streamed(client, project, breast):
    """Bootstrap set plus a stream, screened inline: queries are open."""
    pid = project["id"]
    response = client.post(f"/api/v1/projects/{pid}/examples",
                           json=batch(breast, 0, STREAMED),
                           headers=bearer(project["tokens"]["ingest"]))
    assert response.status_code == 202, response.get_json()
    statuses = [item["status"] for item in response.get_json()["items"]]
    assert statuses[:60] == ["accepted"] * 60 and set(statuses[60:]) == {"pending"}
    return project


def batch(breast, start, stop):
    data, noisy = breast.data, breast.noisy
    return {"items": [{"external_id": str(i), "x": np.asarray(data.X_train[i]).tolist(),
                       "label": int(noisy[i]), "source": "test"} for i in range(start, stop)]}


def assert_error(response, status, code=None):
    """The JSON error shape, with the given status (and code)."""
    assert response.status_code == status, (response.status_code, response.get_data(True))
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]

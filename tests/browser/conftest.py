"""Browser tests: headless Debian Chromium driven by Selenium against the app on 127.0.0.1.

The app runs in-process on a werkzeug server thread over a temporary SQLite database with
the embedded ``ThreadDispatcher`` (the default deployment). Chromium resolves no host but
127.0.0.1, so a page that reached for a CDN would break visibly. When Chromium or its
driver is missing the session installs them with apt (as root) or fails saying what to
install.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ADMIN = "admin-secret-for-browser-tests"
WAIT = 15          # seconds any single wait may take


def pytest_configure(config):
    config.addinivalue_line("markers", "screenshots: regenerate docs/screenshots "
                                       "(on demand: CINCER_SCREENSHOTS=1)")


def _ensure_chromium() -> None:
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail("browser tests need Debian's chromium and chromium-driver: run "
                    "`sudo apt-get install -y chromium chromium-driver` (they provide "
                    f"{CHROMIUM} and {CHROMEDRIVER})", pytrace=False)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(command)}` failed: {done.stderr[-2000:]}", pytrace=False)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (loopback only, bounded timeouts)."""
    _ensure_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--disable-default-apps",
                # nothing but loopback resolves: a CDN reference fails loudly
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(20)
    yield driver
    driver.quit()


class LiveServer:
    """The app on a werkzeug server thread; ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, app):
        from werkzeug.serving import make_server
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    """A context on temporary SQLite with the embedded background thread, plus the admin."""
    from cincer_service.service import (
        Settings,
        access,
        build_context,
        runner,
    )
    ctx = build_context(Settings(data_dir=str(tmp_path_factory.mktemp("browser")),
                                 admin_token=ADMIN, reconcile_seconds=1))
    dispatcher = runner.thread_dispatcher(ctx).start()
    ctx.set_dispatcher(dispatcher)
    access.ensure_admin_token(ctx, ADMIN)
    yield ctx
    dispatcher.stop(10)


@pytest.fixture(scope="session")
def live(service):
    from api import create_app
    server = LiveServer(create_app(service=service, config={"TESTING": True}))
    yield server
    server.stop()


def make_project(ctx, name, X, labels, classes, input_shape, bootstrap=60, every=3,
                 min_open=6, kind="lr", input_kind="tabular") -> dict:
    """Create a project, ingest ``X``/``labels`` (bootstrap first; ``X`` holds texts for a
    text project) and wait until at least ``min_open`` queries are open;
    ``{"id", "tokens": {role: secret}}``."""
    from cincer_service.service import access, examples, projects, reports
    from cincer_service.spec import ProjectSpec
    spec = ProjectSpec.build(name=name, classes=list(classes), input_shape=list(input_shape),
                             input_kind=input_kind, model={"kind": kind, "max_epochs": 60},
                             bootstrap_size=bootstrap,
                             retrain={"mode": "warm", "every_n_answers": every})
    pid = projects.create_project(ctx, spec)["id"]
    tokens = {"admin": ADMIN}
    for role in ("annotator", "viewer", "ingest"):
        tokens[role] = access.create_token(ctx, pid, role, f"{role}-{name}")["token"]
    if input_kind == "text":
        inputs = [{"text": text} for text in X]
    else:
        inputs = [{"x": np.asarray(x).reshape(input_shape).tolist()} for x in X]
    items = [{"external_id": str(i), **inputs[i], "label": int(labels[i]),
              "source": "browser-test"} for i in range(len(X))]
    for start in range(0, len(items), 200):
        examples.ingest(ctx, pid, items[start:start + 200], actor="ingest")
    deadline = time.monotonic() + 120
    while True:
        stats = reports.stats(ctx, pid)
        if stats["queries"]["open"] >= min_open and stats["examples"]["pending"] == 0 \
                and stats["queries"]["computing"] == 0 and stats["model_version"]:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"queries did not open in time: {stats}")
        time.sleep(0.2)
    return {"id": pid, "tokens": tokens}


@pytest.fixture
def breast_project(service, breast):
    """A tabular project (breast, 30 features): 60 bootstrap + 240 streamed examples."""
    data, noisy = breast.data, breast.noisy
    return make_project(service, "breast", data.X_train[:300], noisy[:300],
                        ["malignant", "benign"], [30])


def rest(live, token, method, path, body=None):
    """One REST call from the test (urllib: no extra dependency); ``(status, json)``."""
    import json
    import urllib.error
    import urllib.request
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(live.url + "/api/v1" + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            text = response.read().decode()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        return error.code, (json.loads(text) if text else None)


def sign_in(driver, live, token, pid=None, fresh=True):
    """Open the annotator page and sign in through the form (keyboard only)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    query = f"?project={pid}" if pid else ""
    driver.get(live.url + "/ui/" + query)
    if fresh:
        driver.execute_script("sessionStorage.clear()")
        driver.get(live.url + "/ui/" + query)
    field = WebDriverWait(driver, WAIT).until(EC.visibility_of_element_located((By.ID, "token")))
    field.send_keys(token, Keys.ENTER)

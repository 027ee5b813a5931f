"""Regenerate the screenshots in ``docs/screenshots/`` (on demand, not part of ``make test``):

    CINCER_SCREENSHOTS=1 .venv/bin/python -m pytest -q tests/browser/test_screenshots.py
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import WAIT, make_project, sign_in

pytestmark = [pytest.mark.screenshots,
              pytest.mark.skipif(os.environ.get("CINCER_SCREENSHOTS") != "1",
                                 reason="set CINCER_SCREENSHOTS=1 to regenerate screenshots")]

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def save(driver, name: str, width: int = 1200, height: int | None = None) -> Path:
    """A screenshot of the whole page (up to 1800 px tall), quantised to keep it small."""
    from PIL import Image
    tall = height or min(1800, driver.execute_script(
        "return document.documentElement.scrollHeight") + 20)
    driver.set_window_size(width, tall)
    driver.execute_script("window.scrollTo(0, 0)")
    image = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    image.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    driver.set_window_size(1280, 1000)
    return path


def answer_some(ctx, pid, truth, n):
    """Answer ``n`` open queries with the true labels (so the progress plot has bars), then
    wait for the background retrains."""
    import time

    from cincer_service.service import access, queries, reports
    principal = access.authenticate(ctx, access.create_token(ctx, pid, "annotator",
                                                             "screenshots")["token"])
    for _ in range(n):
        q = queries.lease_next_query(ctx, pid, principal)
        if q is None:
            break
        ce = q["counterexample"]
        queries.answer_query(ctx, pid, q["id"], int(truth[int(q["example"]["external_id"])]),
                             None if ce is None else int(truth[int(ce["external_id"])]),
                             principal)
    deadline = time.monotonic() + 60
    while reports.stats(ctx, pid)["retrain_wanted"] and time.monotonic() < deadline:
        time.sleep(0.3)


def wait_pair(driver):
    WebDriverWait(driver, WAIT).until(
        lambda d: d.find_element(By.ID, "review").is_displayed())


def test_annotator_tabular(browser, live, breast_project):
    sign_in(browser, live, breast_project["tokens"]["annotator"], breast_project["id"])
    wait_pair(browser)
    browser.find_element(By.CSS_SELECTOR, "#side-example .choice").click()
    assert save(browser, "annotator-tabular").stat().st_size < 400_000


def test_annotator_image(browser, live, service):
    from cincer_service.datasets import inject_noise, load_dataset
    data = load_dataset("digits", seed=0)
    noisy, _ = inject_noise(data.y_train, 10, 0.2, seed=0)
    X = data.X_train[:450].reshape(-1, 8, 8)
    project = make_project(service, "digits-8x8", X, noisy[:450],
                           [str(c) for c in range(10)], [8, 8], bootstrap=150,
                           kind="fc")
    sign_in(browser, live, project["tokens"]["annotator"], project["id"])
    wait_pair(browser)
    assert save(browser, "annotator-image").stat().st_size < 400_000
    np.testing.assert_equal(len(browser.find_elements(By.CSS_SELECTOR, "canvas.pixels")), 2)


def test_annotator_text(browser, live, service):
    from cincer_service.datasets import inject_noise, synthetic_intents
    texts, truth, names = synthetic_intents(300, seed=0)
    noisy, _ = inject_noise(truth, len(names), 0.2, seed=0)
    project = make_project(service, "intents", texts, noisy, names, [256], bootstrap=100,
                           input_kind="text")
    sign_in(browser, live, project["tokens"]["annotator"], project["id"])
    wait_pair(browser)
    quotes = browser.find_elements(By.CSS_SELECTOR, "blockquote.utterance")
    assert len(quotes) == 2 and all(q.text for q in quotes)
    assert save(browser, "annotator-text").stat().st_size < 400_000


def test_overview_and_cell_detail(browser, live, service):
    from cincer_service.datasets import inject_noise, load_dataset

    from .test_overview import open_disagreeing_cell, open_overview
    data = load_dataset("digits", seed=0)
    noisy, _ = inject_noise(data.y_train, 10, 0.2, seed=0)
    X = data.X_train[:600].reshape(-1, 8, 8)
    project = make_project(service, "digits-overview", X, noisy[:600],
                           [str(c) for c in range(10)], [8, 8], bootstrap=300, kind="fc",
                           min_open=12)
    answer_some(service, project["id"], data.y_train, 12)
    open_overview(browser, live, project)
    WebDriverWait(browser, WAIT).until(lambda d: d.find_element(
        By.ID, "progress-plot").get_attribute("src").startswith("blob:"))
    browser.find_element(By.ID, "detail").is_displayed()
    assert save(browser, "overview").stat().st_size < 500_000
    browser.find_element(By.ID, "progress-plot").screenshot(str(OUT / "progress.png"))
    open_disagreeing_cell(browser)
    browser.find_element(By.ID, "select-all").click()
    browser.execute_script("document.getElementById('detail').scrollIntoView()")
    detail = browser.find_element(By.ID, "detail")
    from PIL import Image
    browser.set_window_size(1200, 1400)
    png = detail.screenshot_as_png
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(
        OUT / "overview-cell.png", optimize=True)
    browser.set_window_size(1280, 1000)

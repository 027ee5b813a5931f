"""The overview's crowd panels in a real browser: gold marked from a cell, the annotators'
table with a suspend button, the sources' noise rates."""
from __future__ import annotations

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import WAIT, rest
from .test_overview import open_disagreeing_cell, open_overview


def row_says(text):
    """Wait condition: the annotators' table (redrawn after each click) shows ``text``."""
    def check(driver):
        try:
            return text in driver.find_element(By.CSS_SELECTOR,
                                               "#annotators tr[data-annotator]").text
        except StaleElementReferenceException:
            return False
    return check


@pytest.mark.long          # about two minutes: its own project and overview
def test_annotators_sources_and_gold(browser, live, breast_project):
    driver, project = browser, breast_project
    pid, tokens = project["id"], project["tokens"]
    status, q = rest(live, tokens["annotator"], "POST", f"/projects/{pid}/queries/next")
    assert status == 200, q
    status, _ = rest(live, tokens["annotator"], "POST",
                     f"/projects/{pid}/queries/{q['id']}/answer",
                     {"example_label": q["example"]["label"],
                      "counterexample_label": None if q["counterexample"] is None
                      else q["counterexample"]["label"]})
    assert status == 200
    open_overview(driver, live, project)
    WebDriverWait(driver, WAIT).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#annotators tr[data-annotator]"))
    row = driver.find_element(By.CSS_SELECTOR, "#annotators tr[data-annotator]")
    assert "annotator-" in row.text and "ok" in row.text
    assert "Krippendorff" in driver.find_element(By.ID, "annotators-summary").text
    sources = driver.find_element(By.ID, "sources").text
    assert "browser-test" in sources
    row.find_element(By.CSS_SELECTOR, "button.suspend").click()
    WebDriverWait(driver, WAIT).until(row_says("suspended"))
    status, _ = rest(live, tokens["annotator"], "POST", f"/projects/{pid}/queries/next")
    assert status == 403
    driver.find_element(By.CSS_SELECTOR, "#annotators button.suspend").click()   # restore
    WebDriverWait(driver, WAIT).until(row_says("ok"))

    open_disagreeing_cell(driver)
    rows = driver.find_elements(By.CSS_SELECTOR, "#cell-list tbody tr[data-id]")[:2]
    ids = sorted(int(r.get_attribute("data-id")) for r in rows)
    for r in rows:
        r.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
    driver.find_element(By.ID, "do-gold").click()
    WebDriverWait(driver, WAIT).until(
        lambda d: "marked as gold" in d.find_element(By.ID, "message").text)
    status, gold = rest(live, tokens["viewer"], "GET", f"/projects/{pid}/gold")
    assert status == 200 and sorted(g["id"] for g in gold["items"]) == ids
